"""Server-side SMTP AUTH (RFC 4954): the SASL mechanisms and the back ends that check passwords.

* :mod:`.mechanisms`: PLAIN (RFC 4616) and LOGIN as sans-I/O exchanges that turn
  the client's lines into a user name and a password.
* :mod:`.shacrypt`: crypt(3) SHA-512 (``$6$``) hashing and verification in pure Python.
* :mod:`.table`: ``smtpd_sasl_type = relayd``, passwords from relayd_sasl_password_maps.
* :mod:`.dovecot`: ``smtpd_sasl_type = dovecot``, the client of Dovecot's auth socket.
* :mod:`.backend`: the result type both back ends return, and the choice of back end.
"""

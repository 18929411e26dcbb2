"""relayd: an SMTP edge relay on gevent, configured like Postfix."""
__version__ = "0.1.0"

"""Client TLS and AUTH end to end: a real relayd process relays to the recording
sink over STARTTLS (level secure, the test CA) and authenticates with AUTH PLAIN."""
import smtplib

from tests.support.sink import sink_tls_context


def test_relayd_relays_over_verified_tls_with_auth(relayd_factory, sink, tls_certs, tmp_path):
    sink.tls_context = sink_tls_context(tls_certs)
    sink.auth, sink.auth_tls_only = {"relay-user": "pw"}, True
    passwords = tmp_path / "sasl_passwd"
    passwords.write_text(f"[localhost]:{sink.port} relay-user:pw\n")
    relayd = relayd_factory(f"relayhost = [localhost]:{sink.port}\n"
                            "smtp_tls_security_level = secure\n"
                            f"smtp_tls_CAfile = {tls_certs.cert('ca')}\n"
                            "smtp_tls_loglevel = 1\n"
                            "smtp_sasl_auth_enable = yes\n"
                            f"smtp_sasl_password_maps = texthash:{passwords}\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
        smtp.sendmail("alice@relayd.test", ["bob@example.net", "carol@example.net"],
                      b"Subject: out\r\n\r\nhello\r\n")
        smtp.sendmail("alice@relayd.test", ["dave@example.net"], b"Subject: again\r\n\r\nhi\r\n")
    first, second = sink.wait_for(2, timeout=15)
    assert (first.tls, first.user) == (second.tls, second.user) == ("TLSv1.3", "relay-user")
    assert sorted(first.recipients + second.recipients) == [
        "bob@example.net", "carol@example.net", "dave@example.net"]
    relayd.wait_log(f"Verified TLS connection established to localhost[127.0.0.1]:{sink.port}: "
                    "TLSv1.3 with cipher")

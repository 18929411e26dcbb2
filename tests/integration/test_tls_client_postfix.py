"""A chain with Debian's Postfix: client -> relayd -> Postfix (which demands
STARTTLS: smtpd_tls_security_level = encrypt, the test server certificate)
-> the recording sink. relayd must deliver over TLS at level secure."""
import smtplib

import pytest

from tests.support.postfix import PrivatePostfix, available

TLS_MAIN_CF = """\
smtp_tls_security_level = none
smtpd_tls_security_level = encrypt
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
"""


@pytest.fixture
def postfix(sink, tls_certs):
    """A private Postfix instance (tests/support/postfix.py) that demands STARTTLS."""
    reason = available()
    if reason:
        pytest.skip(reason)
    instance = PrivatePostfix(sink.port, TLS_MAIN_CF.format(
        cert=tls_certs.cert("server"), key=tls_certs.key("server"))).start()
    try:
        yield instance
    finally:
        instance.stop()


def test_relayd_delivers_to_postfix_that_demands_starttls(relayd_factory, postfix, sink, tls_certs):
    port = postfix.port
    relayd = relayd_factory(f"relayhost = [localhost]:{port}\n"
                            "smtp_tls_security_level = secure\n"
                            f"smtp_tls_CAfile = {tls_certs.cert('ca')}\n"
                            "smtp_tls_loglevel = 1\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
        smtp.sendmail("alice@relayd.test", ["bob@example.net"], b"Subject: chain\r\n\r\nhello\r\n")
    [txn] = sink.wait_for(1, timeout=30)
    assert txn.recipients == ["bob@example.net"] and b"hello" in txn.data
    relayd.wait_log(f"Verified TLS connection established to localhost[127.0.0.1]:{port}: TLSv1.3")
    postfix.wait_log("Anonymous TLS connection established from localhost[127.0.0.1]")

"""The chain of issue 9: relayd A relays to relayd B, which demands STARTTLS and AUTH.

A takes mail from the test (smtplib, mynetworks) and relays through B
(relayhost) with smtp_tls_security_level = verify against the test CA and
AUTH PLAIN from smtp_sasl_password_maps; B accepts relaying only from an
authenticated client (mynetworks empty) over TLS (level encrypt) and delivers
to the recording sink. Two real relayd processes, real handshakes.
"""
import smtplib

import pytest

from tests.sasl.conftest import PASSWORD, sasl_hash  # noqa: F401 (a fixture)

MAIL = b"Subject: through the chain\r\n\r\nhello\r\n"
# A keeps a deferred message for minutes: the test reads mailq in between.
SLOW_RETRY = "minimal_backoff_time = 300s\nmaximal_backoff_time = 600s\n"


@pytest.fixture
def relay_b(relayd_factory, tls_certs, sasl_hash, tmp_path):  # noqa: F811
    """B: STARTTLS required, AUTH against a `$6$` table, relaying only when authenticated."""
    table = tmp_path / "b_passwords"
    table.write_text(f"alice {sasl_hash}\n")
    return relayd_factory("mynetworks =\n"
                          "smtpd_tls_security_level = encrypt\n"
                          f"smtpd_tls_cert_file = {tls_certs.cert('server')}\n"
                          f"smtpd_tls_key_file = {tls_certs.key('server')}\n"
                          "smtpd_sasl_auth_enable = yes\n"
                          "smtpd_sasl_type = relayd\n"
                          f"relayd_sasl_password_maps = texthash:{table}\n"
                          "smtpd_relay_restrictions = permit_sasl_authenticated, reject\n",
                          name="B")


def start_a(relayd_factory, relay_b, tls_certs, tmp_path, *, password: str = PASSWORD,
            level: str = "verify", extra: str = ""):
    """A: relays everything from 127.0.0.0/8 to B with TLS (``level``) and AUTH."""
    passwords = tmp_path / "a_sasl_passwd"
    passwords.write_text(f"[localhost]:{relay_b.port} alice:{password}\n")
    return relayd_factory(f"relayhost = [localhost]:{relay_b.port}\n"
                          f"smtp_tls_security_level = {level}\n"
                          f"smtp_tls_CAfile = {tls_certs.cert('ca')}\n"
                          "smtp_tls_loglevel = 1\n"
                          "smtp_sasl_auth_enable = yes\n"
                          f"smtp_sasl_password_maps = texthash:{passwords}\n" + extra,
                          name="A")


def send(relay) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as smtp:
        assert smtp.sendmail("carol@client.example", ["dave@far.example"], MAIL) == {}


def test_a_relays_through_b_over_verified_tls_with_auth(relayd_factory, relay_b, sink,
                                                        tls_certs, tmp_path):
    relay_a = start_a(relayd_factory, relay_b, tls_certs, tmp_path)
    send(relay_a)
    (message,) = sink.wait_for(1, timeout=20)
    assert message.recipients == ["dave@far.example"]
    assert message.data.endswith(b"hello\r\n")
    headers = message.data.split(b"\r\n\r\n", 1)[0].decode()
    # The newest Received is B's: it got the message from A over TLS, authenticated.
    newest = headers.split("Received: ")[1]
    assert "by relayd.test" in newest and "with ESMTPSA id" in newest, headers
    relay_a.wait_log(f"Verified TLS connection established to "
                     f"localhost[127.0.0.1]:{relay_b.port}: TLSv1.3 with cipher")
    relay_a.wait_log("status=sent")
    relay_b.wait_log("sasl_method=PLAIN, sasl_username=alice")


def test_a_wrong_password_leaves_the_message_deferred_at_a(relayd_factory, relay_b, sink,
                                                            tls_certs, tmp_path):
    relay_a = start_a(relayd_factory, relay_b, tls_certs, tmp_path, password="not it",
                      extra=SLOW_RETRY)
    send(relay_a)
    relay_a.wait_log("status=deferred", timeout=20)
    relay_b.wait_log("SASL PLAIN authentication failed")
    listing = relay_a.command("mailq").stdout
    assert "carol@client.example" in listing and "dave@far.example" in listing, listing
    assert "SASL authentication failed" in listing and "535 5.7.8" in listing, listing
    log = relay_a.log()
    assert "dsn=4.7.8, status=deferred" in log, log
    assert sink.messages == [] and sink.sessions == 0   # B never reached the sink


def test_a_without_tls_is_refused_by_b_and_sends_nothing_in_the_clear(
        relayd_factory, relay_b, sink, tls_certs, tmp_path):
    # B offers no AUTH before TLS, so A (as Postfix's smtp) goes on without it and
    # B answers MAIL with 530. A 5xx to MAIL FROM bounces in Postfix (smtp_proto.c,
    # smtp_mesg_fail): it is not deferred. What matters: nothing went in the clear.
    relay_a = start_a(relayd_factory, relay_b, tls_certs, tmp_path, level="none")
    send(relay_a)
    relay_a.wait_log(f"relay=localhost[127.0.0.1]:{relay_b.port}, ", timeout=20)
    relay_a.wait_log("dsn=5.7.0, status=bounced (host localhost[127.0.0.1] said: 530 5.7.0 "
                     "Must issue a STARTTLS command first (in reply to MAIL FROM command))")
    b_log = relay_b.log()
    # B saw no AUTH, took no recipient (no queue ID) and no content.
    assert "sasl_username" not in b_log and "client=" not in b_log, b_log
    assert "TLS connection established" not in relay_a.log()
    assert sink.messages == [] and sink.sessions == 0

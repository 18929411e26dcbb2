"""SMTP AUTH in the dialogue, without sockets: RFC 4954 replies, the TLS-only rule,
what an authentication grants and what it never survives (relayd/edge/dialogue.py)."""
import logging
import subprocess
from base64 import b64encode

import pytest

from relayd.anvil import Anvil
from relayd.pipeline.restrictions import Restrictions
from relayd.smtp.replies import (R235_AUTHENTICATED, R421_TOO_MANY_ERRORS, R501_SASL_ABORTED,
                                 R501_SASL_BAD_BASE64, R501_SASL_MALFORMED,
                                 R503_ALREADY_AUTHENTICATED, R503_AUTH_NOT_ENABLED,
                                 R503_MAIL_IN_PROGRESS, R504_SASL_MECHANISM,
                                 R535_SASL_AUTHZID, R535_SASL_FAILED, R538_ENCRYPTION_REQUIRED,
                                 R450_TOO_MANY_AUTH, R554_RELAY_DENIED)
from relayd.smtp.server import ServerSession
from relayd.config import load_config
from tests.pipeline.dialogue import BASE, Dialogue

PASSWORD = "tr0ub4dor&3"


def b64(data: bytes) -> str:
    return b64encode(data).decode()


def plain(user: str = "alice", password: str = PASSWORD, authzid: str = "") -> str:
    return b64(f"{authzid}\0{user}\0{password}".encode())


@pytest.fixture(scope="module")
def password_table(tmp_path_factory):
    hashed = subprocess.run(["mkpasswd", "-m", "sha-512", "-s"], input=PASSWORD.encode(),
                            capture_output=True, check=True).stdout.decode().strip()
    path = tmp_path_factory.mktemp("sasl") / "passwords"
    path.write_text(f"alice {hashed}\n")
    return path


def rules(password_table, extra: str = "") -> Restrictions:
    # mynetworks matches no test client: only AUTH can permit relaying.
    return Restrictions(load_config(main_cf=BASE + (
        "mynetworks =\nsmtpd_sasl_auth_enable = yes\n"
        f"relayd_sasl_password_maps = texthash:{password_table}\n"
        "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n"
        + extra)))


def over_tls(dialogue: Dialogue) -> Dialogue:
    """The same dialogue with a core that is in TLS (what STARTTLS or port 465 give)."""
    core = ServerSession(**dialogue.dialogue.settings.core_options(dialogue.policy.restrictions.config),
                         tls_active=True)
    dialogue.dialogue.core = dialogue.core = core
    return dialogue


@pytest.fixture
def tls_session(password_table):
    d = over_tls(Dialogue(rules(password_table)))
    d.say("EHLO client.example")
    return d


def line(reply) -> str:
    return str(reply)


def test_auth_offered_over_tls_only_by_default(password_table):
    plaintext = Dialogue(rules(password_table))
    ehlo = plaintext.say("EHLO client.example")
    assert "AUTH" not in ehlo
    assert plaintext.say(f"AUTH PLAIN {plain()}") == line(R538_ENCRYPTION_REQUIRED)
    assert not plaintext.dialogue.auth.username
    tls = over_tls(Dialogue(rules(password_table)))
    assert "250-AUTH PLAIN LOGIN" in tls.say("EHLO client.example")


def test_auth_offered_in_plaintext_when_tls_auth_only_is_off(password_table):
    d = Dialogue(rules(password_table, "smtpd_tls_auth_only = no\n"))
    assert "250-AUTH PLAIN LOGIN" in d.say("EHLO client.example")
    assert d.say(f"AUTH PLAIN {plain()}") == line(R235_AUTHENTICATED)


def test_not_enabled(password_table):
    d = over_tls(Dialogue(Restrictions(load_config(main_cf=BASE))))
    assert "AUTH" not in d.say("EHLO client.example")
    assert d.say(f"AUTH PLAIN {plain()}") == line(R503_AUTH_NOT_ENABLED)


def test_plain_success_and_relay(tls_session, caplog):
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    d = tls_session
    assert d.say(f"AUTH PLAIN {plain()}") == line(R235_AUTHENTICATED)
    assert d.mail("alice@sender.example", "bob@far.example") == ["250 2.1.5 Ok"]
    assert "QID1: client=unknown[198.51.100.7], sasl_method=PLAIN, sasl_username=alice" \
        in caplog.messages


def test_login_exchange(tls_session):
    d = tls_session
    assert d.say("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert d.say(b64(b"alice")) == "334 UGFzc3dvcmQ6"
    assert d.say(b64(PASSWORD.encode())) == line(R235_AUTHENTICATED)


def test_plain_with_empty_challenge(tls_session):
    assert tls_session.say("AUTH PLAIN") == "334 "
    assert tls_session.say(plain()) == line(R235_AUTHENTICATED)


def test_wrong_password_is_535_and_grants_nothing(tls_session, caplog):
    d = tls_session
    assert d.say(f"AUTH PLAIN {plain(password='guess')}") == line(
        R535_SASL_FAILED.format("authentication failure"))
    assert "unknown[198.51.100.7]: SASL PLAIN authentication failed: authentication failure, " \
           "sasl_username=alice" in caplog.messages
    assert d.mail("alice@sender.example", "bob@far.example") == [
        line(R554_RELAY_DENIED.format("bob@far.example"))]


def test_unknown_user_is_535(tls_session):
    assert tls_session.say(f"AUTH PLAIN {plain(user='mallory')}").startswith("535 5.7.8 ")


def test_cancel_is_501_and_grants_nothing(tls_session):
    d = tls_session
    assert d.say("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert d.say("*") == line(R501_SASL_ABORTED)
    assert d.mail("alice@sender.example", "bob@far.example")[0].startswith("554 5.7.1")


def test_bad_base64_and_malformed_plain_are_501(tls_session):
    d = tls_session
    assert d.say("AUTH PLAIN !!!") == line(R501_SASL_BAD_BASE64.format("initial"))
    assert d.say("AUTH PLAIN") == "334 "
    assert d.say("@@@") == line(R501_SASL_BAD_BASE64.format("continued"))
    assert d.say(f"AUTH PLAIN {b64(b'alice')}") == line(R501_SASL_MALFORMED.format("PLAIN"))


def test_other_authorization_identity_is_refused(tls_session):
    reply = tls_session.say(f"AUTH PLAIN {plain(authzid='root')}")
    assert reply == line(R535_SASL_AUTHZID)
    assert not tls_session.dialogue.auth.username


def test_unknown_mechanism_is_504(tls_session):
    assert tls_session.say("AUTH CRAM-MD5") == line(R504_SASL_MECHANISM.format("CRAM-MD5"))


def test_auth_twice_and_inside_a_transaction_are_503(tls_session):
    d = tls_session
    d.say("MAIL FROM:<a@sender.example>")
    assert d.say(f"AUTH PLAIN {plain()}") == line(R503_MAIL_IN_PROGRESS)
    d.say("RSET")
    assert d.say(f"AUTH PLAIN {plain()}") == line(R235_AUTHENTICATED)
    assert d.say(f"AUTH PLAIN {plain()}") == line(R503_ALREADY_AUTHENTICATED)


def test_mail_auth_parameter_accepted_and_logged(tls_session, caplog):
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    d = tls_session
    d.say(f"AUTH PLAIN {plain()}")
    assert d.say("MAIL FROM:<alice@sender.example> AUTH=alice@sender.example").startswith("250")
    assert d.say("RCPT TO:<bob@far.example>").startswith("250")
    assert ("QID1: client=unknown[198.51.100.7], sasl_method=PLAIN, sasl_username=alice, "
            "sasl_sender=alice@sender.example") in caplog.messages


def test_auth_parameter_refused_when_auth_is_off():
    d = Dialogue(Restrictions(load_config(main_cf=BASE)))
    d.say("EHLO client.example")
    assert d.say("MAIL FROM:<a@sender.example> AUTH=<>").startswith("555 5.5.4")


def test_failures_are_slowed_and_count_toward_the_hard_limit(password_table):
    d = over_tls(Dialogue(rules(password_table, "smtpd_hard_error_limit = 3\n"
                                                "smtpd_error_sleep_time = 2s\n")))
    d.say("EHLO client.example")
    d.dialogue.receive_data(f"AUTH PLAIN {plain(password='x')}\r\n".encode())
    assert d.dialogue.next_step() == 2     # the pause, before the soft error limit already
    assert d.dialogue.take_output().startswith(b"535 5.7.8")
    d.say(f"AUTH PLAIN {plain(password='y')}")
    assert d.say(f"AUTH PLAIN {plain(password='z')}") == line(
        R421_TOO_MANY_ERRORS.format("relay.test"))
    assert not d.dialogue.auth.username


def test_auth_rate_limit_spans_connections_and_refuses_even_the_right_password(password_table, caplog):
    # Two sessions of one client, counted in one anvil table (shared memory, no sockets).
    rules_ = rules(password_table, "smtpd_client_auth_rate_limit = 2\n")
    anvil = Anvil()

    def connection() -> Dialogue:
        d = over_tls(Dialogue(rules_))
        d.dialogue.auth_rate = lambda: anvil.auth("smtp", "198.51.100.7", 60)
        d.say("EHLO client.example")
        return d

    first = connection()
    assert first.say(f"AUTH PLAIN {plain(password='x')}").startswith("535 5.7.8")
    assert first.say(f"AUTH PLAIN {plain()}") == line(R235_AUTHENTICATED)
    second = connection()
    assert second.say(f"AUTH PLAIN {plain()}") == line(R450_TOO_MANY_AUTH.format("198.51.100.7"))
    assert not second.dialogue.auth.username and second.dialogue.errors == 1
    assert "AUTH command rate limit exceeded: 3 from unknown[198.51.100.7] for service smtp" \
        in caplog.messages


def test_authentication_does_not_survive_a_new_connection(password_table):
    rules_ = rules(password_table, "smtpd_tls_auth_only = no\n")
    first = Dialogue(rules_)
    first.say("EHLO client.example", f"AUTH PLAIN {plain()}")
    second = Dialogue(rules_)
    assert second.mail("alice@sender.example", "bob@far.example")[0].startswith("554 5.7.1")


def test_received_protocol_is_esmtpa(tls_session):
    d = tls_session
    assert d.dialogue.received_protocol() == "ESMTP"
    d.say(f"AUTH PLAIN {plain()}")
    assert d.dialogue.received_protocol() == "ESMTPA"


@pytest.fixture
def login_rules(password_table, tmp_path):
    logins = tmp_path / "sender_logins"
    logins.write_text("alice@sender.example alice\n@shared.example bob, alice\n"
                      "carol@sender.example carol\n")

    def make(check: str) -> Restrictions:
        return rules(password_table, f"smtpd_sender_login_maps = texthash:{logins}\n"
                                     f"smtpd_sender_restrictions = {check}\n")
    return make


def _mail_as(rules_: Restrictions, sender: str, authenticate: bool) -> str:
    d = over_tls(Dialogue(rules_))
    d.say("EHLO client.example")
    if authenticate:
        assert d.say(f"AUTH PLAIN {plain()}") == line(R235_AUTHENTICATED)
    assert d.say(f"MAIL FROM:<{sender}>").startswith("250 ")
    return d.say("RCPT TO:<bob@example.com>")    # smtpd_delay_reject: the sender list runs here


@pytest.mark.parametrize("check, sender, authenticate, refusal", [
    ("reject_sender_login_mismatch", "alice@sender.example", True, None),
    ("reject_sender_login_mismatch", "anyone@shared.example", True, None),
    ("reject_sender_login_mismatch", "carol@sender.example", True, "not owned by user alice"),
    ("reject_sender_login_mismatch", "unlisted@else.example", True, "not owned by user alice"),
    ("reject_sender_login_mismatch", "alice@sender.example", False, "not logged in"),
    ("reject_sender_login_mismatch", "unlisted@else.example", False, None),
    ("reject_sender_login_mismatch", "", True, None),
    ("reject_known_sender_login_mismatch", "unlisted@else.example", True, None),
    ("reject_known_sender_login_mismatch", "carol@sender.example", True, "not owned by user alice"),
    ("reject_known_sender_login_mismatch", "carol@sender.example", False, "not logged in"),
    ("reject_authenticated_sender_login_mismatch", "carol@sender.example", False, None),
    ("reject_authenticated_sender_login_mismatch", "carol@sender.example", True,
     "not owned by user alice"),
    ("reject_unauthenticated_sender_login_mismatch", "carol@sender.example", True, None),
    ("reject_unauthenticated_sender_login_mismatch", "carol@sender.example", False,
     "not logged in"),
])
def test_sender_login_mismatch(login_rules, check, sender, authenticate, refusal):
    reply = _mail_as(login_rules(check), sender, authenticate)
    if refusal is None:
        assert reply.startswith("250 ")    # example.com is a relay domain: no AUTH needed
    else:
        assert reply == f"553 5.7.1 <{sender}>: Sender address rejected: {refusal}"

"""SMTP AUTH over real sockets: smtplib and swaks log in to a relayd process and relay
through it to the sink; mynetworks is empty, so only AUTH can permit relaying. Plaintext
AUTH needs smtpd_tls_auth_only = no here (AUTH over TLS: test_auth_tls.py)."""
import smtplib
import subprocess

import pytest

from tests.sasl.conftest import PASSWORD


@pytest.fixture
def auth_relayd(relayd_factory, sasl_table):
    return relayd_factory(
        "mynetworks =\nsmtpd_tls_auth_only = no\n" + sasl_table +
        "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n")


def _send(port: int, login: tuple[str, str] | None) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.example")
        if login:
            client.login(*login)
        return client.sendmail("alice@client.example", ["bob@far.example"],
                               b"Subject: auth test\r\n\r\nhello\r\n")


def test_smtplib_login_then_relay(auth_relayd, sink):
    with smtplib.SMTP("127.0.0.1", auth_relayd.port, timeout=10) as client:
        client.ehlo("client.example")
        assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        client.user, client.password = "alice", PASSWORD
        assert client.auth("LOGIN", client.auth_login)[0] == 235
        assert client.sendmail("alice@client.example", ["bob@far.example"],
                               b"Subject: auth test\r\n\r\nhello\r\n") == {}
    message = sink.wait_for(1, timeout=10)[0]
    assert message.recipients == ["bob@far.example"]
    received = message.data.split(b"\r\n\r\n", 1)[0]
    assert b"with ESMTPA id" in received
    auth_relayd.wait_log("sasl_method=LOGIN, sasl_username=alice")


def test_without_login_or_with_a_wrong_password_relaying_is_denied(auth_relayd):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(auth_relayd.port, None)
    assert refused.value.recipients["bob@far.example"][0] == 554
    with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
        _send(auth_relayd.port, ("alice", "wrong"))
    assert failed.value.smtp_code == 535


def test_swaks_auth_plain_and_login(auth_relayd, sink):
    for mechanism in ("PLAIN", "LOGIN"):
        done = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{auth_relayd.port}", "--from",
             "alice@client.example", "--to", "bob@far.example", "--auth", mechanism,
             "--auth-user", "alice", "--auth-password", PASSWORD, "--helo", "client.example"],
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout
        assert "235 2.7.0 Authentication successful" in done.stdout
    assert len(sink.wait_for(2, timeout=10)) == 2


def test_swaks_wrong_password_gets_535(auth_relayd):
    done = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{auth_relayd.port}", "--from", "a@client.example",
         "--to", "bob@far.example", "--auth", "PLAIN", "--auth-user", "alice",
         "--auth-password", "nope", "--helo", "client.example"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "535 5.7.8 Error: authentication failed: authentication failure" in done.stdout

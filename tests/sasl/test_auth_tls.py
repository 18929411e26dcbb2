"""SMTP AUTH over real TLS: a relayd process with a certificate from the test CA and
the default smtpd_tls_auth_only = yes; smtplib (starttls() then login()) and
``swaks --tls --auth`` as clients; mynetworks is empty, so only AUTH permits relaying."""
import smtplib
import subprocess
from base64 import b64encode

import pytest

from tests.integration.test_tls_server import client_context, tls_main_cf
from tests.sasl.conftest import PASSWORD
from tests.support.relayd_proc import RelaydProcess, free_port

MESSAGE = b"Subject: auth over tls\r\n\r\nhello\r\n"
RELAY = "mynetworks =\nsmtpd_relay_restrictions = permit_sasl_authenticated, " \
        "reject_unauth_destination\n"
PLAIN = "AUTH PLAIN " + b64encode(f"\0alice\0{PASSWORD}".encode()).decode()


@pytest.fixture
def tls_auth_relayd(relayd_factory, tls_certs, sasl_table):
    return relayd_factory(tls_main_cf(tls_certs, sasl_table + RELAY))


def test_auth_refused_before_starttls_and_accepted_after(tls_auth_relayd, sink):
    with smtplib.SMTP("127.0.0.1", tls_auth_relayd.port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        assert not smtp.has_extn("auth")
        # valid credentials, but in the clear
        assert smtp.docmd(PLAIN) == (
            538, b"5.7.11 Encryption required for requested authentication mechanism")
        smtp.starttls(context=client_context())
        smtp.ehlo("client.example")
        assert set(smtp.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        assert smtp.login("alice", PASSWORD)[0] == 235
        assert smtp.sendmail("alice@client.example", ["bob@far.example"], MESSAGE) == {}
    received = sink.wait_for(1, timeout=10)[0].data.split(b"\r\n\r\n", 1)[0]
    assert b"with ESMTPSA id" in received
    assert b"Authenticated sender" not in received   # smtpd_sasl_authenticated_header = no
    tls_auth_relayd.wait_log("sasl_method=PLAIN, sasl_username=alice")
    tls_auth_relayd.wait_log(" auth=1/2 ")   # the refused AUTH counts as one


def test_authenticated_header(relayd_factory, tls_certs, sasl_table, sink):
    proc = relayd_factory(tls_main_cf(tls_certs, sasl_table + RELAY +
                                      "smtpd_sasl_authenticated_header = yes\n"
                                      "smtpd_tls_received_header = yes\n"))
    with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
        smtp.starttls(context=client_context())
        smtp.login("alice", PASSWORD)
        smtp.sendmail("alice@client.example", ["bob@far.example"], MESSAGE)
    received = sink.wait_for(1, timeout=10)[0].data.decode().split("\r\n")
    at = received.index("\t(Authenticated sender: alice)")
    assert received[at - 1] == "\t(No client certificate requested)"   # as smtpd.c orders them
    assert received[at + 1].startswith("\tby relayd.test (relayd) with ESMTPSA id ")


def test_without_login_over_tls_relaying_is_denied(tls_auth_relayd):
    with smtplib.SMTP("127.0.0.1", tls_auth_relayd.port, timeout=10) as smtp:
        smtp.starttls(context=client_context())
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail("alice@client.example", ["bob@far.example"], MESSAGE)
    assert refused.value.recipients["bob@far.example"][0] == 554


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_tls_auth_relays(tls_auth_relayd, sink, mechanism):
    done = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{tls_auth_relayd.port}", "--tls", "--auth", mechanism,
         "--auth-user", "alice", "--auth-password", PASSWORD, "--from", "alice@client.example",
         "--to", "bob@far.example", "--helo", "client.example"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "235 2.7.0 Authentication successful" in done.stdout
    assert b"with ESMTPSA id" in sink.wait_for(1, timeout=10)[0].data


def test_authentication_is_forgotten_after_starttls(relayd_factory, tls_certs, sasl_table):
    """RFC 3207 4.2: a login in the clear (smtpd_tls_auth_only = no) is gone after STARTTLS."""
    proc = relayd_factory(tls_main_cf(tls_certs, sasl_table + RELAY +
                                      "smtpd_tls_auth_only = no\n"))
    with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        assert smtp.docmd(PLAIN)[0] == 235
        smtp.starttls(context=client_context())
        smtp.ehlo("client.example")
        assert smtp.docmd("MAIL FROM:<alice@client.example>")[0] == 250
        assert smtp.docmd("RCPT TO:<bob@far.example>")[0] == 554
        assert smtp.docmd("RSET")[0] == 250
        assert smtp.docmd(PLAIN)[0] == 235     # not "503 already authenticated"


def test_security_level_encrypt_answers_auth_with_530(relayd_factory, tls_certs, sasl_table):
    proc = relayd_factory(tls_main_cf(tls_certs, sasl_table + RELAY +
                                      "smtpd_tls_security_level = encrypt\n"))
    with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        assert not smtp.has_extn("auth")
        assert smtp.docmd(PLAIN) == (530, b"5.7.0 Must issue a STARTTLS command first")
        smtp.starttls(context=client_context())
        smtp.ehlo("client.example")
        assert smtp.login("alice", PASSWORD)[0] == 235


SUBMISSION = """\
127.0.0.1:{smtp} inet n - n - - smtpd
127.0.0.1:{submission} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
"""


@pytest.fixture
def submission(tmp_path, tls_certs, sasl_table, sink):
    """Postfix's sample submission service: port 25 has no AUTH, 587 demands TLS and AUTH.
    mynetworks is the default 127.0.0.0/8 here: the client list still refuses without AUTH."""
    main_cf = tls_main_cf(tls_certs, sasl_table.replace("smtpd_sasl_auth_enable = yes\n", ""))
    proc = RelaydProcess(tmp_path / "relayd", sink.port, main_cf)
    port = free_port()
    (proc.directory / "master.cf").write_text(SUBMISSION.format(smtp=proc.port, submission=port))
    proc.start()
    yield proc, port
    proc.stop()


def test_submission_service(submission, sink):
    proc, port = submission
    with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
        smtp.starttls(context=client_context())
        smtp.ehlo("client.example")
        assert not smtp.has_extn("auth")          # smtpd_sasl_auth_enable is off on port 25
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        assert smtp.docmd("MAIL FROM:<alice@client.example>")[0] == 530
        smtp.starttls(context=client_context())
        smtp.ehlo("client.example")
        assert smtp.docmd("MAIL FROM:<alice@client.example>")[0] == 250
        code, text = smtp.docmd("RCPT TO:<bob@far.example>")
        assert (code, text) == (554, b"5.7.1 <unknown[127.0.0.1]>: Client host rejected: "
                                     b"Access denied")
        smtp.rset()
        assert smtp.login("alice", PASSWORD)[0] == 235
        assert smtp.sendmail("alice@client.example", ["bob@far.example"], MESSAGE) == {}
    assert b"with ESMTPSA id" in sink.wait_for(1, timeout=10)[0].data

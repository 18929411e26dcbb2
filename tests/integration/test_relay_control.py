"""A client outside mynetworks cannot relay, whatever the address looks like."""
import smtplib

import pytest

from relayd.smtp import replies as R
from tests.integration.test_relay_path import dialogue

# 127.0.0.1 (the test client) is outside these networks.
OUTSIDE = "mynetworks = 192.0.2.0/24\n"

TRICKS = [
    "user@foreign.example",
    "user@FOREIGN.example.",
    "user%foreign.example@relay.example",
    "user%foreign.example@relayd.test",
    "foreign.example!user@relay.example",
    "foreign.example!user@relayd.test",
    '"user@foreign.example"@relay.example',
    '"user%foreign.example"@relay.example',
    "user\\@foreign.example@relay.example",
    "@relay.example:user@foreign.example",
    "@relay.example,@relayd.test:user@foreign.example",
    "user@[192.0.2.1]",
    "user@relay.example.foreign.example",
    "user@notrelay.example",
    "user@foreign.example@relay.example",
]

ALLOWED = [
    "user@relay.example",
    "User@RELAY.Example",
    "user@relay.example.",
    "user@sub.relay.example",
    "postmaster@relayd.test",
    "Postmaster",
]


@pytest.fixture
def outside_relayd(relayd_factory):
    return relayd_factory(OUTSIDE + "smtpd_hard_error_limit = 100\n")


def rcpt_reply(port: int, address: str) -> bytes:
    out = dialogue(port, b"EHLO outside.example\r\nMAIL FROM:<a@example.org>\r\n"
                         b"RCPT TO:<" + address.encode() + b">\r\nQUIT\r\n")
    return [line for line in out.split(b"\r\n") if line[3:4] == b" "][2]


def test_default_relay_restrictions_defer_foreign_destinations(outside_relayd):
    # Postfix's default smtpd_relay_restrictions end in defer_unauth_destination.
    line = rcpt_reply(outside_relayd.port, "user@foreign.example")
    assert line == R.R454_RELAY_DEFERRED.format("user@foreign.example").to_bytes()[:-2]
    log = outside_relayd.wait_log("Relay access denied")
    assert "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 454 4.7.1 <user@foreign.example>" in log


def test_no_address_trick_relays(relayd_factory, sink):
    relayd = relayd_factory(OUTSIDE + "smtpd_relay_restrictions = permit_mynetworks, "
                                      "reject_unauth_destination\n")
    relayed = {address: line for address in TRICKS
               if not (line := rcpt_reply(relayd.port, address))[:1] in (b"4", b"5")}
    assert relayed == {}


def test_relay_domains_and_mydestination_are_accepted(relayd_factory, sink):
    relayd = relayd_factory(OUTSIDE + "smtpd_relay_restrictions = reject_unauth_destination\n")
    for address in ALLOWED:
        assert rcpt_reply(relayd.port, address).startswith(b"250"), address


def test_mynetworks_may_relay_anywhere(relayd, sink):
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.sendmail("a@example.org", ["someone@foreign.example"], b"Subject: out\r\n\r\nx\r\n")
    (msg,) = sink.wait_for(1)
    assert msg.recipients == ["someone@foreign.example"]


def test_relay_restrictions_without_a_guard_refuse_to_start(tmp_path, sink):
    from tests.support.relayd_proc import RelaydProcess
    proc = RelaydProcess(tmp_path / "open", sink.port,
                         "smtpd_relay_restrictions = permit\nsmtpd_recipient_restrictions =\n")
    with pytest.raises(RuntimeError, match="reject_unauth_destination"):
        proc.start()
    assert proc.proc.returncode == 78


def test_reject_unauth_pipelining_refuses_a_client_that_pipelines_without_ehlo(relayd_factory):
    relayd = relayd_factory("smtpd_data_restrictions = reject_unauth_pipelining\n")
    blind = dialogue(relayd.port, b"HELO spambot\r\nMAIL FROM:<a@example.org>\r\n"
                                  b"RCPT TO:<b@relay.example>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\n"
                                  b"QUIT\r\n")
    assert b"503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining" \
        in blind
    polite = dialogue(relayd.port, b"EHLO client\r\nMAIL FROM:<a@example.org>\r\n"
                                   b"RCPT TO:<b@relay.example>\r\nDATA\r\n")
    assert b"354 " in polite

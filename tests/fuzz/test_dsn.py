"""Fuzz the DSN builder (relayd/queue/bounce.py) with random senders,
recipients and remote replies, the replies also taken through the client
core and the delivery agent's wording as a real bounce is.

Oracles: the DSN is one DATA transmission (oracles.assert_wire_form) and
dot-stuffed; the standard library parses it as multipart/report;
report-type=delivery-status with its three parts; its top-level headers and
each recipient's delivery-status fields are exactly the ones bounce(8)
writes (nothing injected); no header value holds a control character.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayd.delivery.setup import reply_outcome
from relayd.queue.bounce import DELAYED, FAILED, build_dsn
from relayd.queue.envelope import Envelope, Recipient
from relayd.queue.outcome import BOUNCED, Outcome, from_text
from relayd.queue.state import QueuedMessage
from relayd.smtp.client import NEED_DATA, ClientProtocolError, ClientSession
from tests.fuzz.harness import fuzz_settings, long_runs
from tests.fuzz.oracles import assert_wire_form, parse_wire_message, text_violation

TOP_HEADERS = {"From", "To", "Subject", "Auto-Submitted", "Date", "Message-Id", "MIME-Version",
               "Content-Type"}
RECIPIENT_FIELDS = {"Final-Recipient", "Original-Recipient", "Action", "Status", "Remote-MTA",
                    "Diagnostic-Code"}
CONN = SimpleNamespace(host="mx.example", name="mx.example[192.0.2.1]",
                       relay="mx.example[192.0.2.1]:25")
ORIGINAL = (b"From: alice@example.com\r\nSubject: hello\r\n..X-Dotted: yes\r\n\r\n"
            b"body\r\n..dotted\r\n")

# Well-behaved input: what the grammar accepts and a polite server says.
ATOM = st.text("abcdefghijklmnopqrstuvwxyz0123456789.-+_=", min_size=1, max_size=12)
PLAIN_ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}", ATOM,
                          st.sampled_from(["example.com", "sub.example.net", "[192.0.2.1]"]))
PLAIN_OUTCOME = st.one_of(
    st.builds(lambda dsn, code, text: Outcome(
                  BOUNCED, dsn, f"host mx.example[192.0.2.1] said: {code} {text} (in reply to RCPT TO "
                  "command)", CONN.relay, CONN.host, f"{code} {text}"),
              st.sampled_from(["5.1.1", "4.4.1"]), st.sampled_from(["550 5.1.1", "452 4.2.2", "554"]),
              st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300)),
    st.builds(lambda dsn, text: Outcome(BOUNCED, dsn, text), st.sampled_from(["5.1.1", "4.4.1"]),
              st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200)))
# Hostile input: any text, line breaks and Unicode line separators included,
# and remote replies as the client core parses them from any bytes.
HOSTILE_TEXT = st.one_of(st.text(max_size=40), st.sampled_from([
    "a\r\nBcc: victim@example.com", "a\u2028Bcc: victim@example.com", "x\x85X-Injected: 1",
    "\rX-Injected: 1", "a\0b", "\u2029", "\x1b[2J"]))
HOSTILE_ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}", HOSTILE_TEXT,
                            st.sampled_from(["example.com", "x\r\nX-Injected: 1"]))
SERVER_REPLY = st.builds(lambda code, text, end: code + b" " + text + end,
                         st.sampled_from([b"550", b"451", b"554"]),
                         st.one_of(st.binary(max_size=60), long_runs(b"x\r.", 3000),
                                   st.sampled_from([b"5.1.1 gone\rX-Injected: 1",
                                                    b"5.1.1 a\xe2\x80\xa8Bcc: x@y"])),
                         st.sampled_from([b"\r\n", b"\n"]))


def parsed_outcome(raw: bytes) -> Outcome | None:
    """The outcome of a recipient refused with ``raw`` at RCPT, as delivery
    records it (None when the client core refuses the reply)."""
    session = ClientSession()
    session.receive_data(b"220 mx.example ESMTP\r\n")
    session.next_event()
    session.send_command("RCPT TO:<c@d.example>")
    try:
        session.receive_data(raw)
        reply = session.next_event()
    except ClientProtocolError:
        return None
    if reply is NEED_DATA:
        return None
    return reply_outcome(reply, CONN, "RCPT TO")


def dsn(sender: str, recipients: list[tuple[str, str | None, Outcome]], kind: str) -> bytes:
    envelope = Envelope(sender, [Recipient(address, original, "bounced", outcome)
                                 for address, original, outcome in recipients], 1700000000.0)
    return build_dsn(QueuedMessage("4F1A2B3C4D5E", envelope, "active"), list(range(len(recipients))),
                     ORIGINAL, myhostname="relay.example.com", reason_kind=kind)


def check_dsn(wire: bytes, recipients: int) -> None:
    assert_wire_form(wire)
    assert not any(line[:1] == b"." and line[:2] != b".." for line in wire.split(b"\r\n")), \
        "a line starting with '.' is not stuffed"
    message = parse_wire_message(wire)
    assert message.get_content_type() == "multipart/report", message.get_content_type()
    assert message.get_param("report-type") == "delivery-status"
    assert set(message.keys()) == TOP_HEADERS, sorted(message.keys())
    for name, value in message.items():
        assert text_violation(value.replace("\r\n", "").replace("\n", "")) is None, (name, value)
    notification, status, headers = message.get_payload()
    assert status.get_content_type() == "message/delivery-status"
    assert headers.get_content_type() == "text/rfc822-headers"
    blocks = status.get_payload()
    assert len(blocks) == 1 + recipients, [b.items() for b in blocks]
    for block in blocks[1:]:
        assert set(block.keys()) <= RECIPIENT_FIELDS and "Status" in block, block.items()
        for name, value in block.items():
            assert text_violation(value.replace("\r\n", "").replace("\n", "")) is None, (name, value)


@fuzz_settings(200)
@given(sender=st.one_of(st.just(""), PLAIN_ADDRESS),
       recipients=st.lists(st.tuples(PLAIN_ADDRESS, st.one_of(st.none(), PLAIN_ADDRESS),
                                     PLAIN_OUTCOME), min_size=1, max_size=4),
       kind=st.sampled_from([FAILED, DELAYED]))
def test_dsn_is_a_valid_report(sender, recipients, kind):
    check_dsn(dsn(sender, recipients, kind), len(recipients))


@fuzz_settings(200)
@given(sender=st.one_of(PLAIN_ADDRESS, HOSTILE_ADDRESS),
       recipients=st.lists(st.tuples(st.one_of(PLAIN_ADDRESS, HOSTILE_ADDRESS),
                                     st.one_of(st.none(), HOSTILE_ADDRESS),
                                     st.one_of(SERVER_REPLY.map(parsed_outcome),
                                               HOSTILE_TEXT.map(lambda t: Outcome(BOUNCED, "5.0.0", t)),
                                               HOSTILE_TEXT.map(lambda t: from_text(BOUNCED, t)))),
                           min_size=1, max_size=3),
       kind=st.sampled_from([FAILED, DELAYED]))
def test_dsn_resists_hostile_addresses_and_replies(sender, recipients, kind):
    recipients = [(a, o, r if r is not None else Outcome(BOUNCED, "5.0.0", "refused"))
                  for a, o, r in recipients]
    check_dsn(dsn(sender, recipients, kind), len(recipients))


@pytest.mark.parametrize("address, reply", [
    ("\x80@example.com", "5.1.1 gone"),                      # build_dsn raised UnicodeEncodeError
    ("b@example.com", "5.0.0 a\r\nBcc: victim@example.com"),  # a header in the delivery-status part
    ("b@example.com", "5.0.0 a\u2028Bcc: victim@example.com"),
    ("b\u2028X-Injected: 1@example.com", "5.1.1 gone"),
    ("b@example.com", "5.0.0 a\x00b"),                        # NUL in the wire form
    ("b@example.com", "5.0.0 \x1b[2J"),                       # terminal escape
])
def test_dsn_fixed_hostile_cases(address, reply):
    """Minimal inputs the hostile harness found, kept as fixed cases."""
    check_dsn(dsn("a@example.com", [(address, None, from_text(BOUNCED, reply))], FAILED), 1)


def test_dsn_oracle_catches_an_injected_header():
    """The oracle itself: a header smuggled in through the sender is caught."""
    wire = dsn("a@example.com", [("b@example.com", None, Outcome(BOUNCED, "5.1.1", "gone"))], FAILED)
    check_dsn(wire, 1)
    injected = wire.replace(b"\r\nTo: a@example.com\r\n", b"\r\nTo: a@example.com\r\nBcc: x@y\r\n")
    with pytest.raises(AssertionError):
        check_dsn(injected, 1)

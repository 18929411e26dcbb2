"""The DSN builder on hostile input: addresses, next-hop replies and returned
headers can neither add a header line or a MIME part nor break the wire form."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayd.queue.bounce import DELAYED, FAILED, build_dsn, recipient_reply
from relayd.queue.envelope import Envelope, Recipient
from relayd.queue.state import QueuedMessage
from tests.queue.dsn_oracle import check_dsn

ORIGINAL = b"From: alice@example.com\r\nSubject: hello\r\n\r\nbody\r\n"
BREAKS = ["\r", "\n", "\r\n", "\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\r\n\r\n"]


def dsn(sender="alice@example.com", rcpts=(("bob@example.net", None),), reason=None,
        content=ORIGINAL, kind=FAILED):
    reason = reason or "host mx.example.net[192.0.2.1] said: 550 5.1.1 No such user (in reply to RCPT TO command)"
    env = Envelope(sender, [Recipient(a, o, "bounced", recipient_reply("5.1.1", reason)) for a, o in rcpts],
                   1700000000.0)
    wire = build_dsn(QueuedMessage("4F1A2B3C4D5E", env, "active"), list(range(len(rcpts))), content,
                     myhostname="relay.example.com", reason_kind=kind)
    return wire, check_dsn(wire, len(rcpts))


def fields(report):
    return report.get_payload()[1].get_payload()[1:]


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_reply_text_cannot_start_a_header_line(brk):
    reason = f"host mx.example.net[192.0.2.1] said: 550 5.1.1 no{brk}Bcc: victim@x (in reply to RCPT TO command)"
    wire, report = dsn(reason=reason)
    [block] = fields(report)
    assert block["Diagnostic-Code"] == "smtp; 550 5.1.1 no" + "?" * len(brk) + "Bcc: victim@x"
    assert block["Remote-MTA"] == "dns; mx.example.net"
    assert b"\r\nBcc:" not in wire


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_addresses_cannot_start_a_header_line(brk):
    """The grammar accepts U+2028, U+2029 and U+0085 in addresses today; the
    email package would split a header value there."""
    sender, rcpt = f"alice{brk}Bcc: evil@x@example.com", f"bob{brk}X-Evil: 1@example.net"
    wire, report = dsn(sender=sender, rcpts=[(rcpt, f"Bob{brk}Cc: evil@x")],
                       reason=f"connect to mx{brk}X-Evil: 2: Connection refused")
    assert f"\r\nTo: alice{'?' * len(brk)}Bcc: evil@x@example.com\r\n".encode() in wire
    [block] = fields(report)
    assert block["Final-Recipient"] == f"rfc822; bob{'?' * len(brk)}X-Evil: 1@example.net"
    assert block["Original-Recipient"] == f"rfc822; Bob{'?' * len(brk)}Cc: evil@x"
    assert block["Diagnostic-Code"] == f"X-Postfix; connect to mx{'?' * len(brk)}X-Evil: 2: Connection refused"
    notification = report.get_payload()[0].get_content()
    assert f"<bob{'?' * len(brk)}X-Evil: 1@example.net>: connect to mx" in notification


def test_non_ascii_reply_and_addresses_are_built_not_crashed():
    """A next hop answering in UTF-8 used to make the builder raise UnicodeEncodeError."""
    wire, report = dsn(sender="jörg@example.com", rcpts=[("bö@example.net", None)],
                       reason="host mx.example.net[192.0.2.1] said: 550 5.1.1 Empfänger unbekannt "
                              "(in reply to RCPT TO command)",
                       content="Subject: Grüße\r\n\r\nbody\r\n".encode())
    assert wire.isascii()
    assert report["To"] == "j?rg@example.com"
    [block] = fields(report)
    assert block["Diagnostic-Code"] == "smtp; 550 5.1.1 Empf?nger unbekannt"
    assert "<bö@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1 Empfänger unbekannt" \
        in report.get_payload()[0].get_content()
    assert "Subject: Grüße" in report.get_payload()[2].get_content()


def test_returned_headers_keep_their_folding_and_lose_controls():
    content = (b"Subject: a\x00b\rc\x1bd\r\nX-Folded: one\r\n\ttwo\r\nX-Long: " + b"x" * 3000
               + b"\r\n\r\nbody\r\n")
    wire, report = dsn(content=content)
    returned = report.get_payload()[2].get_content().replace("\r\n", "\n")
    assert "Subject: a?b?c?d\nX-Folded: one\n\ttwo\n" in returned
    # Too long for SMTP: broken by CRLF SPACE, one header still.
    assert returned.count("\nX-Long: ") == 1
    assert returned.split("X-Long: ")[1].rstrip("\n").replace("\n ", "") == "x" * 3000


def test_long_reply_stays_one_field():
    reply = "550 5.1.1 " + "word " * 800
    wire, report = dsn(reason=f"host mx.example.net[192.0.2.1] said: {reply.strip()} (in reply to RCPT TO command)")
    [block] = fields(report)
    assert block["Diagnostic-Code"].replace(" ", "") == ("smtp;" + reply).replace(" ", "")


def test_remote_reply_that_quotes_the_wrapper():
    said = "550 5.1.1 x (in reply to RCPT TO command) host y[1] said: 250 ok"
    wire, report = dsn(reason=f"host mx.example.net[192.0.2.1] said: {said} (in reply to RCPT TO command)")
    [block] = fields(report)
    assert (block["Remote-MTA"], block["Diagnostic-Code"]) == ("dns; mx.example.net", f"smtp; {said}")


# --- the invariant over generated input -------------------------------------------------------

_HOSTILE = st.text(alphabet=st.one_of(st.characters(), st.sampled_from("\r\n\x00\u2028\u2029\x85\t.:- ")),
                   max_size=40)
_REASON = st.one_of(
    _HOSTILE,
    _HOSTILE.map(lambda t: f"host mx.example.net[192.0.2.1] said: 550 {t} (in reply to RCPT TO command)"),
    st.integers(0, 3000).map(lambda n: "host h[1] said: 550 " + "y" * n + " (in reply to DATA command)"))
_LINE = st.one_of(st.binary(max_size=40), st.integers(990, 2100).map(lambda n: b"X-Long: " + b"z" * n))


@settings(max_examples=150, deadline=None)
@given(sender=_HOSTILE, rcpts=st.lists(st.tuples(_HOSTILE, st.one_of(st.none(), _HOSTILE), _REASON),
                                       min_size=1, max_size=3),
       head=st.lists(_LINE, max_size=6), kind=st.sampled_from([FAILED, DELAYED]))
def test_any_input_gives_a_well_formed_dsn(sender, rcpts, head, kind):
    env = Envelope(sender, [Recipient(a, o, "bounced", recipient_reply("5.1.1", r)) for a, o, r in rcpts],
                   1700000000.0)
    content = b"\r\n".join(head) + b"\r\n\r\nbody\r\n"
    wire = build_dsn(QueuedMessage("4F1A2B3C4D5E", env, "active"), list(range(len(rcpts))), content,
                     myhostname="relay.example.com", reason_kind=kind)
    check_dsn(wire, len(rcpts))

"""The DSN builder on hostile input: addresses, next-hop replies and returned
headers can neither add a header line or a MIME part nor break the wire form."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayd.queue.bounce import DELAYED, FAILED, build_dsn
from relayd.queue.envelope import Envelope, Recipient
from relayd.queue.outcome import BOUNCED, Outcome
from relayd.queue.state import QueuedMessage
from tests.queue.dsn_oracle import check_dsn

ORIGINAL = b"From: alice@example.com\r\nSubject: hello\r\n\r\nbody\r\n"
BREAKS = ["\r", "\n", "\r\n", "\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\r\n\r\n"]


def said(reply, host="mx.example.net"):
    """The outcome smtp(8) records for a recipient refused at RCPT with ``reply``."""
    return Outcome(BOUNCED, "5.1.1", f"host {host}[192.0.2.1] said: {reply} (in reply to RCPT TO command)",
                   f"{host}[192.0.2.1]:25", host, reply)


def dsn(sender="alice@example.com", rcpts=(("bob@example.net", None),), outcome=None,
        content=ORIGINAL, kind=FAILED):
    outcome = outcome or said("550 5.1.1 No such user")
    env = Envelope(sender, [Recipient(a, o, "bounced", outcome) for a, o in rcpts], 1700000000.0)
    wire = build_dsn(QueuedMessage("4F1A2B3C4D5E", env, "active"), list(range(len(rcpts))), content,
                     myhostname="relay.example.com", reason_kind=kind)
    return wire, check_dsn(wire, len(rcpts))


def fields(report):
    return report.get_payload()[1].get_payload()[1:]


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_reply_text_cannot_start_a_header_line(brk):
    wire, report = dsn(outcome=said(f"550 5.1.1 no{brk}Bcc: victim@x"))
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
                       outcome=Outcome(BOUNCED, "5.1.1", f"connect to mx{brk}X-Evil: 2: Connection refused"))
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
                       outcome=said("550 5.1.1 Empfänger unbekannt"),
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
    wire, report = dsn(outcome=said(reply.strip()))
    [block] = fields(report)
    assert block["Diagnostic-Code"].replace(" ", "") == ("smtp;" + reply).replace(" ", "")


def test_remote_reply_that_quotes_the_wrapper():
    reply = "550 5.1.1 x (in reply to RCPT TO command) host y[1] said: 250 ok"
    wire, report = dsn(outcome=said(reply))
    [block] = fields(report)
    assert (block["Remote-MTA"], block["Diagnostic-Code"]) == ("dns; mx.example.net", f"smtp; {reply}")


def test_hostile_remote_host_stays_one_field():
    wire, report = dsn(outcome=said("550 5.1.1 no", host="mx\r\nBcc: victim@x"))
    [block] = fields(report)
    assert block["Remote-MTA"] == "dns; mx??Bcc: victim@x"
    assert b"\r\nBcc:" not in wire


def test_recipient_without_outcome_gets_the_notice_default_status():
    env = Envelope("alice@example.com", [Recipient("bob@example.net", None, "bounced")], 1700000000.0)
    for kind, status in ((FAILED, "5.0.0"), (DELAYED, "4.0.0")):
        wire = build_dsn(QueuedMessage("4F1A2B3C4D5E", env, "active"), [0], ORIGINAL,
                         myhostname="relay.example.com", reason_kind=kind)
        [block] = fields(check_dsn(wire, 1))
        assert (block["Status"], block["Diagnostic-Code"]) == (status, "X-Postfix; ")


# --- the invariant over generated input -------------------------------------------------------

_HOSTILE = st.text(alphabet=st.one_of(st.characters(), st.sampled_from("\r\n\x00\u2028\u2029\x85\t.:- ")),
                   max_size=40)
_OUTCOME = st.one_of(
    _HOSTILE.map(lambda t: Outcome(BOUNCED, "5.1.1", t)),
    _HOSTILE.map(lambda t: said(f"550 {t}")),
    st.builds(said, st.just("550 5.1.1 no"), _HOSTILE),
    st.integers(0, 3000).map(lambda n: said("550 " + "y" * n)))
_LINE = st.one_of(st.binary(max_size=40), st.integers(990, 2100).map(lambda n: b"X-Long: " + b"z" * n))


@settings(max_examples=150, deadline=None)
@given(sender=_HOSTILE, rcpts=st.lists(st.tuples(_HOSTILE, st.one_of(st.none(), _HOSTILE), _OUTCOME),
                                       min_size=1, max_size=3),
       head=st.lists(_LINE, max_size=6), kind=st.sampled_from([FAILED, DELAYED]))
def test_any_input_gives_a_well_formed_dsn(sender, rcpts, head, kind):
    env = Envelope(sender, [Recipient(a, o, "bounced", r) for a, o, r in rcpts], 1700000000.0)
    content = b"\r\n".join(head) + b"\r\n\r\nbody\r\n"
    wire = build_dsn(QueuedMessage("4F1A2B3C4D5E", env, "active"), list(range(len(rcpts))), content,
                     myhostname="relay.example.com", reason_kind=kind)
    check_dsn(wire, len(rcpts))

"""Byte-level tests of the sans-I/O SMTP client session."""
import ast
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayd.smtp import client as client_module
from relayd.smtp import text as text_module
from relayd.smtp.client import (NEED_DATA, REPLY_LINE_LIMIT, REPLY_TEXT_LIMIT,
                                ClientProtocolError, ClientSession)
from relayd.smtp.replies import R250_QUEUED, Reply

EHLO_REPLY = (b"250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
              b"250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n")


def greeted() -> ClientSession:
    session = ClientSession()
    session.receive_data(b"220 mx.example.net ESMTP Postfix\r\n")
    assert session.next_event() == Reply(220, "", "mx.example.net ESMTP Postfix")
    return session


def test_greeting_arrives_in_pieces():
    session = ClientSession()
    session.receive_data(b"220 mx.exa")
    assert session.next_event() is NEED_DATA
    session.receive_data(b"mple.net ESMTP\r\n")
    assert session.next_event() == Reply(220, "", "mx.example.net ESMTP")
    assert session.next_event() is NEED_DATA


def test_ehlo_keywords_are_kept():
    session = greeted()
    assert session.send_command("EHLO relay.example.com") == b"EHLO relay.example.com\r\n"
    session.receive_data(EHLO_REPLY)
    reply = session.next_event()
    assert reply.code == 250 and reply.text.split("\n")[0] == "mx.example.net"
    assert session.extensions == {"PIPELINING": "", "SIZE": "10240000", "8BITMIME": "",
                                  "ENHANCEDSTATUSCODES": "", "STARTTLS": ""}


def test_enhanced_status_parsed_and_catalogue_round_trip():
    session = greeted()
    session.send_command("MAIL FROM:<a@example.com>")
    session.receive_data(R250_QUEUED.format("4XyZ").to_bytes())
    assert session.next_event() == R250_QUEUED.format("4XyZ")


def test_multiline_reply_with_status_on_each_line():
    session = greeted()
    session.send_command("RCPT TO:<u@example.net>")
    session.receive_data(b"550-5.1.1 No such user\r\n550 5.1.1 here, sorry\r\n")
    assert session.next_event() == Reply(550, "5.1.1", "No such user\nhere, sorry")


def test_status_of_another_class_is_text():
    session = greeted()
    session.send_command("NOOP")
    session.receive_data(b"250 5.0.0 odd\r\n")
    assert session.next_event() == Reply(250, "", "5.0.0 odd")


def test_pipelined_replies_match_commands_in_order():
    session = greeted()
    wire = b"".join(session.send_command(c) for c in
                    ("MAIL FROM:<a@x>", "RCPT TO:<b@y>", "RCPT TO:<c@y>", "DATA"))
    assert wire == b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n"
    assert session.awaiting == ("MAIL", "RCPT", "RCPT", "DATA")
    session.receive_data(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n450 4.2.0 <c@y>: busy\r\n354 go\r\n")
    codes = [session.next_event().code for _ in range(4)]
    assert codes == [250, 250, 450, 354]
    assert session.awaiting == ()


def test_send_data_appends_end_of_data():
    session = greeted()
    assert session.send_data(b"Subject: x\r\n\r\n..dot\r\n") == b"Subject: x\r\n\r\n..dot\r\n.\r\n"
    assert session.send_data(b"") == b".\r\n"
    with pytest.raises(ValueError):
        session.send_data(b"no final newline")


def test_bare_lf_reply_is_accepted():
    session = greeted()
    session.send_command("QUIT")
    session.receive_data(b"221 2.0.0 Bye\n")
    assert session.next_event() == Reply(221, "2.0.0", "Bye")


@pytest.mark.parametrize("wire", [b"2x0 what\r\n", b"250_Ok\r\n", b"\r\n", b"hello\r\n",
                                  b"250-first\r\n451 second\r\n", b"150 old\r\n"])
def test_malformed_reply_is_a_protocol_error(wire):
    session = greeted()
    session.send_command("NOOP")
    session.receive_data(wire)
    with pytest.raises(ClientProtocolError):
        session.next_event()


def test_reply_nobody_asked_for():
    session = greeted()
    session.receive_data(b"250 Ok\r\n")
    with pytest.raises(ClientProtocolError):
        session.next_event()


def test_endless_reply_line_is_bounded():
    session = greeted()
    session.send_command("NOOP")
    session.receive_data(b"250 " + b"x" * REPLY_LINE_LIMIT)
    with pytest.raises(ClientProtocolError):
        session.next_event()


def test_endless_multiline_reply_is_bounded():
    session = greeted()
    session.send_command("EHLO me")
    session.receive_data(b"250-x\r\n" * 1000)
    with pytest.raises(ClientProtocolError):
        session.next_event()


def test_starttls_reply_followed_by_injected_plaintext_is_refused():
    """CVE-2011-0411 on the client side: a man in the middle appends a
    reply after "220 Ready to start TLS"; it must never be read as a TLS reply."""
    session = greeted()
    session.send_command("STARTTLS")
    session.receive_data(b"220 2.0.0 Ready to start TLS\r\n250-evil\r\n250 AUTH PLAIN\r\n")
    with pytest.raises(ClientProtocolError):
        session.next_event()


def test_plaintext_arriving_later_before_handshake_is_refused():
    session = greeted()
    session.receive_data(b"")
    session.send_command("EHLO me")
    session.receive_data(EHLO_REPLY)
    session.next_event()
    session.send_command("STARTTLS")
    session.receive_data(b"220 2.0.0 Ready to start TLS\r\n")
    assert session.next_event().code == 220
    with pytest.raises(ClientProtocolError):
        session.receive_data(b"250 injected\r\n")
    session.tls_started()
    assert session.extensions == {}
    session.send_command("EHLO me")
    session.receive_data(b"250 mx\r\n")
    assert session.next_event().code == 250


def test_starttls_cannot_be_pipelined():
    session = greeted()
    session.send_command("NOOP")
    with pytest.raises(ValueError):
        session.send_command("STARTTLS")


def test_command_cannot_smuggle_a_second_line():
    with pytest.raises(ValueError):
        greeted().send_command("RCPT TO:<a@x>\r\nRCPT TO:<b@y>")


@pytest.mark.parametrize("module", [client_module, text_module])
def test_core_imports_no_io(module):
    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    assert not imported & {"socket", "ssl", "gevent", "time", "select", "OpenSSL"}


# --- what a next hop says is made printable before anyone uses it (Postfix's smtp_chat_resp) ---

@pytest.mark.parametrize("said, text", [
    (b"550 5.1.1 no\rBcc: victim@x\r\n", "no?Bcc: victim@x"),          # bare CR: a header line in a DSN
    (b"550 5.1.1 a\x00b\x1b[31mc\x7f\r\n", "a?b?[31mc?"),               # NUL, terminal escape, DEL
    (b"550 5.1.1 a\tb\r\r\n", "a?b"),                                   # TAB; every trailing CR goes
    ("550 5.1.1 a\u2028Bcc: v@x\u2029c\x85d".encode(), "a?Bcc: v@x?c?d"),  # Python's line breaks
    (b"550 5.1.1 bad \xff\xfe utf-8\r\n", "bad ?? utf-8"),
    ("550 5.1.1 Jörg unbekannt\r\n".encode(), "Jörg unbekannt"),         # printable UTF-8 stays
])
def test_reply_is_made_printable(said, text):
    session = greeted()
    session.send_command("RCPT TO:<v@example.net>")
    session.receive_data(said if said.endswith(b"\n") else said + b"\r\n")
    reply = session.next_event()
    assert reply == Reply(550, "5.1.1", text)
    assert len(reply.lines()) == 1 and all(ch.isprintable() for ch in reply.text)


def test_multiline_reply_keeps_its_lines_and_loses_the_controls():
    session = greeted()
    session.send_command("RCPT TO:<v@example.net>")
    session.receive_data(b"550-5.1.1 first\rX-Injected: 1\r\n550 5.1.1 second\x00\r\n")
    assert session.next_event().lines() == ["550-5.1.1 first?X-Injected: 1", "550 5.1.1 second?"]


def test_long_multiline_reply_keeps_only_its_first_text():
    """A next hop's 200 lines of 1,000 characters: read and checked, but only
    about REPLY_TEXT_LIMIT characters of it go on to logs, the queue and DSNs."""
    session = greeted()
    session.send_command("RCPT TO:<v@example.net>")
    session.receive_data(b"550-5.1.1 " + b"x" * 1000 + b"\r\n"
                         + (b"550-5.1.1 " + b"y" * 1000 + b"\r\n") * 198 + b"550 5.1.1 last\r\n")
    reply = session.next_event()
    assert (reply.code, reply.status) == (550, "5.1.1")
    assert len(reply.lines()) == 3 and REPLY_TEXT_LIMIT <= len(reply.text) < REPLY_TEXT_LIMIT + 1000
    session.send_command("NOOP")
    session.receive_data(b"250 2.0.0 Ok\r\n")
    assert session.next_event() == Reply(250, "2.0.0", "Ok")


# --- smtp_line_length_limit: long content lines broken by CRLF SPACE, as smtp(8) does ---

LONG = (b"Subject: short\r\nX-Long: " + b"h" * 2500 + b"\r\n\r\n"
        + b"b" * 3000 + b"\r\n.." + b"d" * 1500 + b"\r\n" + b"e" * 998 + b"\r\n")


def lines_of(wire: bytes) -> list[bytes]:
    assert wire.endswith(b"\r\n")
    return wire[:-2].split(b"\r\n")


def test_long_lines_are_broken_by_crlf_space():
    sent = greeted().send_data(LONG)
    assert sent.endswith(b"\r\n.\r\n")
    lines = lines_of(sent[:-3])
    assert max(map(len, lines)) == 998
    # The header stays one header: every piece after its first is a continuation line.
    start = lines.index(b"X-Long: " + b"h" * 990)
    assert lines[start + 1:start + 4] == [b" " + b"h" * 997, b" " + b"h" * 513, b""]
    # The stuffed line keeps its stuffing; no piece after it starts with a dot.
    assert b".." + b"d" * 996 in lines and not any(line.startswith(b".d") for line in lines)
    assert lines[-1] == b"e" * 998       # exactly at the limit: untouched
    # Taking out each inserted CRLF SPACE gives back the original.
    assert sent[:-3].replace(b"\r\n ", b"") == LONG


def test_limit_zero_sends_lines_unchanged():
    session = ClientSession(line_length_limit=0)
    session.receive_data(b"220 mx\r\n")
    session.next_event()
    assert session.send_data(LONG) == LONG + b".\r\n"


def test_content_within_the_limit_is_passed_on_as_is():
    wire = (b"Subject: x\r\n\r\n" + b"x" * 998 + b"\r\n") * 50
    assert text_module.break_long_lines(wire, 998) is wire
    assert text_module.break_long_lines(b"y" * 999 + b"\r\n", 998) == b"y" * 998 + b"\r\n y\r\n"


_LINE = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"n").lstrip(b" "))


def bare_crs(wire: bytes) -> int:
    return wire.count(b"\r") - wire.count(b"\r\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=12), st.integers(min_value=1, max_value=40))
def test_broken_lines_respect_the_limit_and_dot_stuffing(lines, limit):
    """For any content and limit: no line over the limit (1 acts as 2),
    every line starting with "." is still stuffed, content without a long
    line untouched, no CRLF split or made of
    a CR that was there (the bare CRs stay as many), and taking out the
    inserted CRLF SPACE gives back the content (the input's lines never
    start with a space, so every line that does is a piece)."""
    wire = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    out = text_module.break_long_lines(wire, limit)
    # Content with no line over the limit is passed on as it is, and only then.
    assert (out is wire) == all(len(line) <= max(limit, 2) for line in wire.split(b"\r\n"))
    assert out.endswith(b"\r\n") or out == b""
    assert bare_crs(out) == bare_crs(wire) and b"\n" not in out.replace(b"\r\n", b"")
    assert all(len(line) <= max(limit, 2) for line in out.split(b"\r\n"))
    assert all(line.startswith(b"..") for line in out.split(b"\r\n") if line.startswith(b"."))
    assert out.replace(b"\r\n ", b"") == wire


_REPLY_BYTES = st.lists(st.one_of(
    st.binary(max_size=30),
    st.sampled_from([b"250 ", b"550-", b"550 5.1.1 ", b"\r\n", b"\r", b"\n", b"\x00",
                     "\u2028".encode(), b"\xc2\x85", b"\xff"])), max_size=20).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(_REPLY_BYTES)
def test_any_server_bytes_give_printable_replies_or_a_protocol_error(said):
    """The oracle for the client core: whatever a server sends, a reply's
    lines are printable (they are joined by the only line break, "\\n")."""
    session = greeted()
    for _ in range(4):
        session.send_command("NOOP")
    session.receive_data(said)
    try:
        while (reply := session.next_event()) is not NEED_DATA:
            assert all(line.isprintable() for line in reply.text.split("\n"))
    except ClientProtocolError:
        pass

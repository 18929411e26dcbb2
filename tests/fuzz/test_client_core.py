"""Fuzz the sans-I/O client core (relayd/smtp/client.py) with random server
replies: well-formed and multiline ones, garbage, bare CR and LF, NUL, 8-bit
and Unicode line separators, huge lines, cut at random points, while a
driver sends a delivery's commands as its replies come in (pipelined or not,
STARTTLS included).

Oracles: every input yields parsed replies or raises ClientProtocolError,
nothing else; a reply has a code the grammar allows and a status of its own
class; the buffer stays under REPLY_LINE_LIMIT; and (issue 7 item 8) what
the delivery agent hands on from a reply (the recipient's reason, which goes
to the queue, the DSN and the log) holds no CR, LF, NUL or other control.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayd.delivery.setup import reply_outcome
from relayd.smtp.client import (NEED_DATA, REPLY_LINE_LIMIT, ClientProtocolError,
                                ClientSession)
from relayd.smtp.replies import Reply
from tests.fuzz.harness import fuzz_settings, long_runs, split
from tests.fuzz.oracles import text_violation

SCRIPT = ["EHLO relay.example", "STARTTLS", "EHLO relay.example", "MAIL FROM:<a@b.example>",
          "RCPT TO:<c@d.example>", "RCPT TO:<e@d.example>", "DATA", b"Subject: x\r\n\r\nhi\r\n",
          "QUIT"]
CODES = st.one_of(st.sampled_from([b"220", b"250", b"354", b"221", b"421", b"451", b"550",
                                   b"554", b"334"]),
                  st.binary(min_size=0, max_size=4))
TEXT_BYTES = st.one_of(
    st.sampled_from([b"", b"2.0.0 Ok", b"5.1.1 <c@d.example>: Recipient address rejected",
                     b"4.7.0 try\ragain", b"ok\0nul", b"\x1b[31mred", b"\xe2\x80\xa8Injected: yes",
                     b"\xc2\x85Injected: yes", b"5.1.1", b"2.0.0", b"PIPELINING", b"SIZE 1000",
                     b"8BITMIME", b"\xff\xfe"]),
    st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=20), long_runs(b"x\r", 5000))
LINE = st.builds(lambda code, sep, text, end: code + sep + text + end, CODES,
                 st.sampled_from([b" ", b"-", b"", b"\t"]), TEXT_BYTES,
                 st.sampled_from([b"\r\n", b"\n", b"\r\r\n", b"\r", b""]))
SERVER = st.lists(st.one_of(LINE, LINE, st.binary(max_size=10)), max_size=30).map(b"".join)
# The delivery agent's stand-in connection: reply_outcome reads only its names.
CONN = SimpleNamespace(host="mx.example", name="mx.example[192.0.2.1]",
                       relay="mx.example[192.0.2.1]:25")
STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\Z")


class Delivery:
    """Sends SCRIPT as a delivery does, one or more commands per reply received."""

    def __init__(self, draw) -> None:
        self.session = ClientSession()
        self.draw = draw
        self.script = list(SCRIPT)
        self.replies: list[tuple[Reply, str]] = []

    def feed(self, data: bytes) -> bool:
        """Hand ``data`` to the core; False once the conversation is over."""
        session = self.session
        try:
            session.receive_data(data)
            while True:
                waiting = session.awaiting
                reply = session.next_event()
                if reply is NEED_DATA:
                    assert len(session._buffer) < REPLY_LINE_LIMIT   # bounded: test-only peek
                    return True
                self.check(reply)
                self.replies.append((reply, waiting[0]))
                if waiting[0] == "STARTTLS" and reply.code == 220:
                    session.tls_started()      # the handshake, as far as the core knows
                self.send_more()
        except ClientProtocolError:
            return False

    def send_more(self) -> None:
        for _ in range(self.draw(st.integers(0, 3), label="pipelined")):
            if not self.script:
                return
            command = self.script[0]
            if command == "STARTTLS" and self.session.awaiting:
                return
            self.script.pop(0)
            if isinstance(command, bytes):
                assert self.session.send_data(command).endswith(b"\r\n.\r\n")
            else:
                assert self.session.send_command(command) == command.encode() + b"\r\n"

    @staticmethod
    def check(reply) -> None:
        assert isinstance(reply, Reply), reply
        assert 200 <= reply.code <= 599, reply
        assert reply.status == "" or (STATUS.match(reply.status)
                                      and reply.status[0] == str(reply.code)[0]), reply


def converse(server: bytes, data) -> Delivery:
    delivery = Delivery(data.draw)
    for chunk in data.draw(split(server, 10), label="chunks"):
        if not delivery.feed(chunk):
            break
    return delivery


@fuzz_settings(400)
@given(server=SERVER, data=st.data())
def test_client_core_on_random_replies(server, data):
    converse(server, data)


@fuzz_settings(300)
@given(server=SERVER, data=st.data())
def test_client_reply_texts_are_printable_when_handed_on(server, data):
    for reply, command in converse(server, data).replies:
        for line in reply.text.split("\n"):
            assert text_violation(line) is None, (text_violation(line), reply)
        reason = reply_outcome(reply, CONN, command).reason
        assert text_violation(reason) is None, (text_violation(reason), reason)


@pytest.mark.parametrize("raw", [b"550 5.1.1 gone\rX-Injected: 1\r\n", b"550 a\0b\r\n",
                                 b"550 a\xe2\x80\xa8Bcc: x@y\r\n", b"550 \x1b[2J\r\n"])
def test_client_fixed_hostile_replies(raw):
    """Minimal inputs the harness found, kept as fixed cases."""
    session = ClientSession()
    session.receive_data(b"220 mx.example ESMTP\r\n")
    session.next_event()
    session.send_command("RCPT TO:<c@d.example>")
    session.receive_data(raw)
    reason = reply_outcome(session.next_event(), CONN, "RCPT TO").reason
    assert text_violation(reason) is None, reason

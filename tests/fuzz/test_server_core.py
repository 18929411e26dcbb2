"""Fuzz the sans-I/O server core (relayd/smtp/server.py) with random byte
streams cut at random points, answered by a driver that picks random replies.

Oracles: every input yields events or raises ProtocolError carrying a reply;
each event that owes a reply blocks the next one until it is answered (replies
strictly in order); no RuntimeError unless the driver misuses the core (which
the harness does on purpose now and then, and expects); events respect the
command sequence; the DataChunks of an accepted message plus ".\\r\\n" are one
DATA transmission (oracles.assert_wire_form) whose unstuffed size is
DataEnd.size; the receive buffer stays within about line_length_limit.
"""
from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from relayd.smtp import replies as R
from relayd.smtp.events import (
    NEED_DATA, Auth, AuthResponse, BadCommand, ConnectionClosed, Data, DataChunk, DataEnd,
    Expn, Helo, Help, Mail, Noop, Quit, Rcpt, Rset, StartTLS, Vrfy)
from relayd.smtp.server import ProtocolError, ServerSession, State
from tests.fuzz.harness import LINE_TOKENS, fuzz_settings, long_runs, split, stream_of
from tests.fuzz.oracles import assert_wire_form, dot_unstuff, text_violation

HOST = "relay.example"

COMMANDS = [b"EHLO client.example\r\n", b"HELO c\r\n", b"MAIL FROM:<a@b.example>\r\n",
            b"MAIL FROM:<> SIZE=100 BODY=8BITMIME\r\n", b"RCPT TO:<c@d.example>\r\n",
            b"DATA\r\n", b"RSET\r\n", b"NOOP\r\n", b"NOOP x\r\n", b"QUIT\r\n", b"VRFY x\r\n",
            b"EXPN x\r\n", b"HELP\r\n", b"STARTTLS\r\n", b"AUTH PLAIN\r\n", b"AUTH PLAIN AGI=\r\n",
            b"*\r\n", b"CONNECT x\r\n", b"POST / HTTP/1.0\r\n", b"mail from:<x@y>\r\n",
            b"RCPT TO:<\xe2\x80\xa8@d>\r\n", b"MAIL FROM:<a\xc2\x85b@c>\r\n", b"EHLO \x1b[31m\r\n"]
TRANSACTION = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
TOKENS = st.one_of(st.sampled_from(COMMANDS), st.just(TRANSACTION), st.sampled_from(LINE_TOKENS),
                   st.binary(max_size=12), long_runs(b"a. \r\n", 300))
OPTIONS = st.fixed_dictionaries({
    "line_length_limit": st.sampled_from([24, 64, 2048]),
    "message_size_limit": st.sampled_from([0, 50, 10240000]),
    "bare_newline": st.sampled_from(["normalize", "reject", "no"]),
    "helo_required": st.booleans(),
    "vrfy_enabled": st.booleans(),
    "starttls_available": st.booleans(),
    "auth_mechanisms": st.sampled_from([(), ("PLAIN", "LOGIN")]),
})
# Replies a driver may give to each event (besides the closing 421).
CHOICES = {
    Helo: [None, R.R501_INVALID_HOSTNAME], Mail: [R.R250_SENDER_OK, R.R554_ACCESS_REJECTED],
    Rcpt: [R.R250_RECIPIENT_OK, R.R554_RELAY_DENIED.format("x")],
    Data: [R.R354_START_DATA, R.R554_NO_VALID_RECIPIENTS, R.R451_TEMPORARY_FAILURE],
    Rset: [R.R250_OK], Noop: [R.R250_OK], Quit: [R.R221_BYE], Vrfy: [R.R252_VRFY.format("x")],
    Expn: [R.R500_UNRECOGNIZED], Help: [R.R214_HELP],
    StartTLS: [R.R220_READY_FOR_TLS, R.R451_TEMPORARY_FAILURE],
    Auth: [R.Reply(334, "", ""), R.Reply(235, "2.7.0", "Authentication successful"),
           R.Reply(535, "5.7.8", "Error: authentication failed")],
    AuthResponse: [R.Reply(334, "", ""), R.Reply(235, "2.7.0", "Authentication successful"),
                   R.Reply(535, "5.7.8", "Error: authentication failed")],
}
COMMAND_STATES = (State.CONNECTED, State.GREETED, State.TRANSACTION)


class Transcript:
    """Drives one ServerSession as relayd's session driver does, checking as it goes."""

    def __init__(self, session: ServerSession, pick, misuse) -> None:
        self.session = session
        self.pick = pick          # pick(list of replies) -> one of them
        self.misuse = misuse      # misuse() -> whether to probe a driver misuse now
        self.chunks: list[bytes] = []
        self.closed = False
        self.events: list[object] = []

    def feed(self, data: bytes) -> None:
        self.session.receive_data(data)
        while not self.closed:
            state = self.session.state
            try:
                event = self.session.next_event()
            except ProtocolError as error:
                assert isinstance(error.reply, R.Reply), error
                assert error.reply.code == 221 or error.reply.code >= 400, error.reply
                assert self.session.state is State.CLOSED
                self.session.send(error.reply)
                self.closed = True
                return
            if event is NEED_DATA:
                assert self.session.buffered <= self.session.line_length_limit + 2, \
                    f"buffer holds {self.session.buffered} bytes"
                return
            self.events.append(event)
            if isinstance(event, ConnectionClosed):
                self.closed = True
                return
            self.check_sequence(state, event)
            if not isinstance(event, DataChunk):
                self.answer(event)

    def check_sequence(self, state: State, event) -> None:
        session = self.session
        if isinstance(event, (DataChunk, DataEnd)):
            assert state is State.DATA, (state, event)
        elif isinstance(event, AuthResponse) or (isinstance(event, BadCommand)
                                                  and state is State.AUTH):
            # A SASL line that is not UTF-8 or holds NUL is a BadCommand (see below).
            assert state is State.AUTH, (state, event)
        else:
            assert state in COMMAND_STATES, (state, event)
        if isinstance(event, DataChunk):
            self.chunks.append(event.data)
        elif isinstance(event, DataEnd):
            wire, self.chunks = b"".join(self.chunks), []
            # What was handed on of a refused message is discarded, but must be sane too.
            assert_wire_form(wire, complete=event.error is None)
            if event.error is None:
                assert event.size == len(dot_unstuff(wire)), (event.size, wire)
        elif isinstance(event, Mail):
            assert session.sender is None
            assert session.helo_name is not None or not session.helo_required
        elif isinstance(event, Rcpt):
            assert state is State.TRANSACTION
        elif isinstance(event, Data):
            assert session.recipients
        elif isinstance(event, Auth):
            assert session.extended and not session.authenticated and session.sender is None
        elif isinstance(event, BadCommand):
            assert event.reply.code >= 500
        for value in _strings(event):
            # Client text in an event never carries a line break or NUL (CR becomes SP).
            assert not any(c in value for c in "\r\n\0"), (event, value)

    def answer(self, event) -> None:
        session = self.session
        if self.misuse():
            # Driver misuse: asking for the next event while a reply is owed.
            with pytest.raises(RuntimeError):
                session.next_event()
        if isinstance(event, BadCommand):
            reply = event.reply
        elif isinstance(event, DataEnd):
            reply = event.error or self.pick(
                [R.R250_QUEUED.format("4ABC"), R.R550_CONTENT_REJECTED.format("no")])
        else:
            choices = CHOICES[type(event)]
            # The accepting reply three times as likely: sessions get somewhere.
            reply = self.pick(choices[:1] * 3 + choices + [R.R421_SHUTDOWN.format(HOST)])
            if reply is None:
                reply = session.ehlo_reply() if event.extended else R.R250_HELO.format(HOST)
        assert session.send(reply) == reply.to_bytes()
        if reply.code in (221, 421):
            assert session.state is State.CLOSED
            self.closed = True
        elif isinstance(event, StartTLS) and reply.code == 220:
            assert session.state is State.TLS_HANDSHAKE and session.buffered == 0
            if self.misuse():
                with pytest.raises(RuntimeError):
                    session.receive_data(b"NOOP\r\n")
            session.starttls_done()
            assert session.state is State.CONNECTED and session.tls_active


def _strings(event) -> list[str]:
    out = []
    for name in getattr(event, "__slots__", ()):
        value = getattr(event, name)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            out += [v for v in list(value) + list(value.values()) if isinstance(v, str)]
    return out


_SAMPLERS: dict[tuple, st.SearchStrategy] = {}   # one strategy per reply list: built once
_MISUSE = st.booleans()


def random_driver(session: ServerSession, data) -> Transcript:
    def pick(choices):
        key = tuple(choices)
        if key not in _SAMPLERS:
            _SAMPLERS[key] = st.sampled_from(key)
        return data.draw(_SAMPLERS[key])
    return Transcript(session, pick, lambda: data.draw(_MISUSE, label="misuse"))


def accepting_driver(session: ServerSession) -> Transcript:
    """Accepts everything (the first reply of each list), never misuses the core."""
    return Transcript(session, lambda choices: choices[0], lambda: False)


@fuzz_settings(400)
@given(options=OPTIONS, raw=stream_of(TOKENS), data=st.data())
def test_server_core_on_random_streams(options, raw, data):
    session = ServerSession(hostname=HOST, **options)
    transcript = random_driver(session, data)
    for chunk in data.draw(split(raw), label="chunks") + [b""]:
        transcript.feed(chunk)
    event("reached: " + ", ".join(sorted({type(e).__name__ for e in transcript.events
                                           if isinstance(e, (Mail, Rcpt, Data, DataEnd, Auth))})))
    assert transcript.closed and session.state is State.CLOSED
    assert session.next_event() == ConnectionClosed()


CONTENT = st.one_of(st.sampled_from(LINE_TOKENS), st.binary(max_size=8), long_runs(b"a.\r\n", 200))


@fuzz_settings(400)
@given(options=OPTIONS, content=stream_of(CONTENT, 60), data=st.data())
def test_server_core_data_phase(options, content, data):
    """The DATA phase reached every time: a transaction, then random content."""
    session = ServerSession(hostname=HOST, **options)
    transcript = accepting_driver(session)
    for chunk in data.draw(split(TRANSACTION + content + b"\r\n.\r\nQUIT\r\n", 12)) + [b""]:
        transcript.feed(chunk)
    assert transcript.closed


def test_accepting_driver_reaches_data():
    """The data-phase harness does test DATA (guards the harness itself)."""
    transcript = accepting_driver(ServerSession(hostname=HOST))
    transcript.feed(TRANSACTION + b"x\r\n.\r\n")
    assert DataEnd(3, None) in transcript.events


@fuzz_settings(200)
@given(local=st.text(min_size=1, max_size=6), domain=st.sampled_from(["d.example", "b"]))
def test_envelope_addresses_are_printable_ascii(local, domain):
    transcript = accepting_driver(ServerSession(hostname=HOST))
    transcript.feed(b"EHLO c\r\n" + f"MAIL FROM:<{local}@{domain}>\r\n".encode())
    for event in transcript.events:
        if isinstance(event, Mail):
            assert event.sender.isascii() and text_violation(event.sender) is None, event


def test_bad_line_during_auth_ends_the_exchange():
    transcript = accepting_driver(ServerSession(hostname=HOST, auth_mechanisms=("PLAIN",)))
    transcript.feed(b"EHLO c\r\nAUTH PLAIN\r\n\xff\r\nNOOP\r\n")
    assert isinstance(transcript.events[-2], BadCommand)
    assert transcript.events[-1] == Noop()

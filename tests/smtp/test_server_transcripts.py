"""Golden transcripts of the server core: bytes in -> the bytes a driver writes.

The tiny driver below answers every event with the default positive reply
(as a permissive relay would), so each transcript shows what the core itself
decides: syntax, sequence, pipelining order.
"""
import pytest

from relayd.smtp import replies as R
from relayd.smtp.events import (
    NEED_DATA, Auth, AuthResponse, BadCommand, ConnectionClosed, Data, DataChunk, DataEnd,
    Expn, Helo, Help, Mail, Noop, Quit, Rcpt, Rset, StartTLS, Vrfy)
from relayd.smtp.server import ProtocolError, ServerSession, State

HOST = "mx.example.net"


def default_reply(session, event):
    """The catalogue reply a permissive driver gives to ``event``."""
    if isinstance(event, Helo):
        return session.ehlo_reply() if event.extended else R.R250_HELO.format(HOST)
    if isinstance(event, DataEnd):
        return event.error or R.R250_QUEUED.format("4ABC123")
    if isinstance(event, BadCommand):
        return event.reply
    if isinstance(event, (Auth, AuthResponse)):
        return R.Reply(235, "2.7.0", "Authentication successful")
    return {
        Mail: R.R250_SENDER_OK, Rcpt: R.R250_RECIPIENT_OK, Data: R.R354_START_DATA,
        Rset: R.R250_OK, Noop: R.R250_OK, Quit: R.R221_BYE, Vrfy: R.R252_VRFY.format("x"),
        Expn: R.R500_UNRECOGNIZED, Help: R.R214_HELP, StartTLS: R.R220_READY_FOR_TLS,
    }[type(event)]


class Driver:
    """Feeds bytes, answers events, collects what would be written."""

    def __init__(self, session=None, **options):
        self.session = session or ServerSession(hostname=HOST, **options)
        self.events = []
        self.written = b""
        self.closed = False

    def feed(self, *pieces):
        for piece in pieces:
            self.session.receive_data(piece)
            self.drain()
        return self

    def drain(self):
        while not self.closed:
            try:
                event = self.session.next_event()
            except ProtocolError as error:
                self.written += self.session.send(error.reply)
                self.closed = True
                return
            if event is NEED_DATA:
                return
            self.events.append(event)
            if isinstance(event, ConnectionClosed):
                self.closed = True
            elif not isinstance(event, DataChunk):
                self.written += self.session.send(default_reply(self.session, event))
                if isinstance(event, StartTLS) and self.session.state is State.TLS_HANDSHAKE:
                    self.session.starttls_done()

    @property
    def message(self):
        return b"".join(e.data for e in self.events if isinstance(e, DataChunk))


def converse(data, **options):
    """The bytes written in answer to ``data``."""
    return Driver(**options).feed(data).written


def test_golden_session():
    written = converse(
        b"EHLO client.example.org\r\n"
        b"MAIL FROM:<alice@example.org> SIZE=1000 BODY=8BITMIME\r\n"
        b"RCPT TO:<bob@example.net>\r\n"
        b"DATA\r\n"
        b"Subject: hi\r\n\r\nbody\r\n.\r\n"
        b"QUIT\r\n", message_size_limit=10240000)
    assert written == (
        b"250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n"
        b"250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n"
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
        b"250 2.0.0 Ok: queued as 4ABC123\r\n221 2.0.0 Bye\r\n")


def test_golden_errors_as_postfix_words_them():
    written = converse(
        b"HELO\r\nRCPT TO:<a@b>\r\nDATA\r\nMAIL FROM:a@b\r\nMAIL FROM:<c@d>\r\n"
        b"DATA\r\nFOO\r\nRCPT TO:<>\r\nMAIL\r\n")
    assert written == (
        b"501 Syntax: HELO hostname\r\n"
        b"503 5.5.1 Error: need MAIL command\r\n"
        b"503 5.5.1 Error: need RCPT command\r\n"
        b"250 2.1.0 Ok\r\n"
        b"503 5.5.1 Error: nested MAIL command\r\n"
        b"554 5.5.1 Error: no valid recipients\r\n"
        b"500 5.5.2 Error: command not recognized\r\n"
        b"501 5.1.3 Bad recipient address syntax\r\n"
        b"503 5.5.1 Error: nested MAIL command\r\n")


def test_byte_by_byte_feed_gives_the_same_answers():
    data = (b"helo x\r\nmail from:<a@b>\r\nrcpt to:<c@d>\r\ndata\r\n"
            b"line\r\n.\r\nnoop\r\nquit\r\n")
    whole = converse(data)
    driver = Driver()
    driver.feed(*(data[i:i + 1] for i in range(len(data))))
    assert driver.written == whole
    assert whole.endswith(R.R250_OK.to_bytes() + R.R221_BYE.to_bytes())


def test_pipelined_commands_are_answered_in_order_and_state_follows_replies():
    session = ServerSession(hostname=HOST)
    session.receive_data(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nRCPT TO:<z@y>\r\n")
    assert session.next_event() == Helo("c", True)
    with pytest.raises(RuntimeError):
        session.next_event()  # the EHLO is not answered yet
    session.send(session.ehlo_reply())
    assert session.next_event() == Mail("a@b", {})
    assert session.state is State.GREETED  # MAIL is not accepted until the 250
    session.send(R.R250_SENDER_OK)
    assert session.state is State.TRANSACTION and session.sender == "a@b"
    session.next_event()
    session.send(R.R554_RELAY_DENIED.format("x@y"))
    session.next_event()
    session.send(R.R250_RECIPIENT_OK)
    assert session.recipients == ["z@y"]
    assert session.next_event() is NEED_DATA


@pytest.mark.parametrize("commands, reply", [
    (b"EHLO\r\n", R.R501_HELO_SYNTAX.format("EHLO")),
    (b"HELO x\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\n", R.R503_NESTED_MAIL),
    (b"HELO x\r\nRCPT TO:<a@b>\r\n", R.R503_NEED_MAIL),
    (b"HELO x\r\nDATA\r\n", R.R503_NEED_RCPT),
    (b"HELO x\r\nMAIL FROM:<a@b>\r\nDATA\r\n", R.R554_NO_VALID_RECIPIENTS),
    (b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA now\r\n", R.R501_SYNTAX.format("DATA")),
    (b"HELO x\r\nMAIL TO:<a@b>\r\n", R.R501_MAIL_SYNTAX),
    (b"HELO x\r\nMAIL FROM:\r\n", R.R501_MAIL_SYNTAX),
    (b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT FROM:<a@b>\r\n", R.R501_RCPT_SYNTAX),
    (b"RSET x\r\n", R.R501_SYNTAX.format("RSET")),
    (b"VRFY\r\n", R.R501_SYNTAX.format("VRFY address")),
    (b"ETRN example.org\r\n", R.R500_UNRECOGNIZED),
    (b"\r\n", R.R500_BAD_SYNTAX),
    (b"NOOP \xff\r\n", R.R500_BAD_UTF8),
    (b"NO\0OP\r\n", R.R500_BAD_SYNTAX),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xd7\r\n", R.R500_BAD_UTF8),  # UTF-8 first
    (b"STARTTLS\r\n", R.R502_NOT_IMPLEMENTED),
    (b"EHLO x\r\nAUTH PLAIN\r\n", R.R503_AUTH_NOT_ENABLED),
])
def test_sequence_and_syntax_errors(commands, reply):
    driver = Driver().feed(commands)
    assert isinstance(driver.events[-1], BadCommand)
    assert driver.events[-1].reply == reply
    assert driver.written.endswith(reply.to_bytes())


def test_mail_without_helo_is_accepted_unless_helo_required():
    assert converse(b"MAIL FROM:<a@b>\r\n") == R.R250_SENDER_OK.to_bytes()
    assert converse(b"MAIL FROM:<a@b>\r\n", helo_required=True) == R.R503_NEED_HELO.to_bytes()


def test_helo_and_rset_end_the_transaction():
    for reset in (b"RSET\r\n", b"HELO again\r\n", b"EHLO again\r\n"):
        driver = Driver().feed(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n" + reset)
        assert driver.session.state is State.GREETED
        assert driver.session.sender is None and driver.session.recipients == []
        driver.feed(b"MAIL FROM:<e@f>\r\n")
        assert driver.written.endswith(R.R250_SENDER_OK.to_bytes())


def test_commands_are_case_insensitive_and_tolerate_blanks():
    driver = Driver().feed(b"eHlO  client \r\nmail from: <a@b>\r\nRcPt To:<c@d>  \r\n")
    assert driver.events == [Helo("client", True), Mail("a@b", {}), Rcpt("c@d", {})]


def test_vrfy_expn_help_reach_the_driver():
    driver = Driver().feed(b"VRFY postmaster\r\nEXPN staff\r\nHELP\r\n")
    assert driver.events == [Vrfy("postmaster"), Expn("staff"), Help("")]


@pytest.mark.parametrize("line", [b"GET / HTTP/1.0\r\n", b"CONNECT x:25\r\n",
                                  b"Subject: hello\r\n", b"\x16\x03\x01\r\n"])
def test_non_smtp_commands_end_the_session(line):
    driver = Driver().feed(b"HELO x\r\n" + line + b"NOOP\r\n")
    assert driver.written.endswith(R.R221_BREAK_RULES.to_bytes())
    assert driver.session.state is State.CLOSED
    assert driver.session.next_event() == ConnectionClosed()


def test_commands_after_quit_are_ignored():
    driver = Driver().feed(b"QUIT\r\nMAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n")
    assert driver.written == R.R221_BYE.to_bytes()
    assert driver.events == [Quit(), ConnectionClosed()]


def test_client_close_gives_connection_closed_and_drops_a_partial_line():
    driver = Driver().feed(b"HELO x\r\nMAIL FROM:<a", b"")
    assert driver.events == [Helo("x", False), ConnectionClosed()]


def test_unsolicited_reply_is_refused_except_closing_ones():
    session = ServerSession(hostname=HOST)
    with pytest.raises(RuntimeError):
        session.send(R.R250_OK)
    assert session.send(R.R421_TIMEOUT.format(HOST)).startswith(b"421 4.4.2 ")
    assert session.state is State.CLOSED


def test_starttls_discards_plaintext_pipelined_after_it():
    session = ServerSession(hostname=HOST, starttls_available=True)
    assert b"250-STARTTLS\r\n" in session.ehlo_reply().to_bytes()
    session.receive_data(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\n")
    session.next_event()
    session.send(session.ehlo_reply())
    assert session.next_event() == StartTLS()
    session.send(R.R220_READY_FOR_TLS)
    assert session.state is State.TLS_HANDSHAKE and session.buffered == 0
    session.starttls_done()
    assert session.tls_active and session.state is State.CONNECTED
    assert session.helo_name is None
    assert b"STARTTLS" not in session.ehlo_reply().to_bytes()
    assert session.next_event() is NEED_DATA  # the injected MAIL is gone
    session.receive_data(b"STARTTLS\r\n")
    assert session.next_event() == BadCommand(R.R554_TLS_ACTIVE)


def test_starttls_refused_keeps_plaintext_session():
    driver = Driver(starttls_available=True)
    session = driver.session
    session.receive_data(b"STARTTLS\r\nNOOP\r\n")
    assert session.next_event() == StartTLS()
    session.send(R.Reply(454, "4.7.0", "TLS not available due to local problem"))
    assert session.next_event() == Noop()


def test_auth_exchange():
    session = ServerSession(hostname=HOST, auth_mechanisms=("PLAIN", "LOGIN"))
    assert b"250-AUTH PLAIN LOGIN\r\n" in session.ehlo_reply().to_bytes()
    session.receive_data(b"HELO x\r\nAUTH LOGIN\r\n")
    session.next_event()
    session.send(R.R250_HELO.format(HOST))
    assert session.next_event() == BadCommand(R.R503_NEED_HELO)  # AUTH needs EHLO
    session.send(R.R503_NEED_HELO)
    session.receive_data(b"EHLO x\r\nAUTH login\r\ndXNlcg==\r\ncGFzcw==\r\nAUTH PLAIN\r\n")
    session.next_event()
    session.send(session.ehlo_reply())
    assert session.next_event() == Auth("LOGIN", None)
    session.send(R.Reply(334, "", "VXNlcm5hbWU6"))
    assert session.next_event() == AuthResponse("dXNlcg==")
    session.send(R.Reply(334, "", "UGFzc3dvcmQ6"))
    assert session.next_event() == AuthResponse("cGFzcw==")
    session.send(R.Reply(235, "2.7.0", "Authentication successful"))
    assert session.next_event() == BadCommand(R.R503_ALREADY_AUTHENTICATED)


@pytest.mark.parametrize("line, reply", [
    (b"\xff\xfe", R.R535_SASL_BAD_RESPONSE),                 # not UTF-8 (found by fuzzing)
    (b"dXNl\0cg==", R.R535_SASL_BAD_RESPONSE),                # NUL
    (b"d" * 3000, R.R500_SASL_RESPONSE_LIMIT),                 # longer than line_length_limit
])
def test_a_sasl_response_the_core_refuses_ends_the_exchange(line, reply):
    """As smtpd_sasl_glue.c: the refusal ends AUTH, so the client's next line is
    a command again, not a SASL response."""
    session = ServerSession(hostname=HOST, auth_mechanisms=("LOGIN",))
    session.receive_data(b"EHLO x\r\nAUTH LOGIN\r\n" + line + b"\r\nNOOP\r\n")
    session.next_event()
    session.send(session.ehlo_reply())
    assert session.next_event() == Auth("LOGIN", None)
    session.send(R.Reply(334, "", "VXNlcm5hbWU6"))
    assert session.next_event() == BadCommand(reply)
    assert session.send(reply) == reply.to_bytes()
    assert session.next_event() == Noop()


def test_auth_refused_in_a_transaction():
    driver = Driver(auth_mechanisms=("PLAIN",)).feed(
        b"EHLO x\r\nMAIL FROM:<a@b>\r\nAUTH PLAIN AGFAYg==\r\n")
    assert driver.events[-1] == BadCommand(R.R503_MAIL_IN_PROGRESS)


def test_ehlo_keywords_follow_postfix_order():
    session = ServerSession(hostname=HOST, message_size_limit=0, vrfy_enabled=False,
                            starttls_available=True, auth_mechanisms=("PLAIN",))
    assert session.ehlo_reply().lines() == [
        "250-mx.example.net", "250-PIPELINING", "250-SIZE", "250-STARTTLS",
        "250-AUTH PLAIN", "250-ENHANCEDSTATUSCODES", "250 8BITMIME"]


def test_greeting():
    session = ServerSession(hostname=HOST)
    assert session.greeting(f"{HOST} ESMTP relayd") == b"220 mx.example.net ESMTP relayd\r\n"


def test_arguments_of_noop_help_quit_are_ignored_as_postfix_does():
    # RFC 5321 4.1.1.9 "NOOP [ SP String ]"; Postfix answers 250 (smtpd.c noop_cmd),
    # ignores HELP's argument and QUIT's ("don't bother checking the syntax"),
    # and answers RSET with an argument "501 5.5.4 Syntax: RSET".
    written = converse(b"NOOP hello there\r\nHELP MAIL\r\nRSET now\r\nQUIT now\r\n")
    assert written == (R.R250_OK.to_bytes() + R.R214_HELP.to_bytes()
                       + R.R501_SYNTAX.format("RSET").to_bytes() + R.R221_BYE.to_bytes())
    assert R.R214_HELP.to_bytes() == (
        b"214 2.0.0 Commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET STARTTLS VRFY\r\n")

"""The SMTP client session: a sans-I/O state machine (bytes in, replies out).

Shaped like h11 and like the server core: the caller feeds what the server
sent with :meth:`ClientSession.receive_data`, pulls parsed replies with
:meth:`ClientSession.next_event` (a :class:`Reply`, or :data:`NEED_DATA`),
and gets the bytes to write from :meth:`send_command` / :meth:`send_data`.
No sockets, no clock, no TLS here: the delivery agent does the I/O.

Rules this module enforces (RFC 5321 section 4.2, 4.5.3.1.5):

- reply-line  = code ( "-" / SP ) [ textstring ] CRLF ; a bare LF is accepted
  as Postfix's smtp(8) accepts it. The last line of a reply has SP (or no
  text at all), every earlier line "-"; all lines carry the same code.
- A reply line longer than :data:`REPLY_LINE_LIMIT` or a reply of more than
  :data:`REPLY_LINES_LIMIT` lines is a protocol error: the buffer is bounded.
  Of a long multi-line reply only the lines that start within the first
  :data:`REPLY_TEXT_LIMIT` characters are kept, as Postfix's
  smtp_chat_resp() keeps $line_length_limit of it: the text goes on into
  logs, the queue and DSNs.
- The enhanced status code (RFC 2034: class.subject.detail) is taken from
  the first line when present, and removed from each line that repeats it.
- Replies are matched to commands in order; the session keeps the queue of
  commands awaiting a reply, which is what makes PIPELINING work.
- The EHLO reply's lines after the first are ESMTP keywords, kept in
  :attr:`ClientSession.extensions` (keyword upper-cased -> parameters).
- Every reply line is made printable (Postfix's printable(), as
  smtp_chat_resp() does) as soon as it is read, before anything parses,
  logs or returns it: a CR, NUL or U+2028 inside a next hop's reply must
  not become a line break in a log line, a DSN or a header.
- Message content leaves with no line longer than ``line_length_limit``
  (smtp_line_length_limit): longer lines are broken by inserting CRLF SPACE.
- After the server's 220 reply to STARTTLS, no byte may follow in plaintext:
  such bytes were sent before the TLS handshake and would be read as if they
  came over TLS (CVE-2011-0411, client side). They are refused with
  :class:`ClientProtocolError`, not silently used.
"""
from __future__ import annotations

import re
from collections import deque

from relayd.smtp.replies import Reply, same_class
from relayd.smtp.text import break_long_lines, printable

__all__ = ["ClientSession", "ClientProtocolError", "NEED_DATA",
           "REPLY_LINE_LIMIT", "REPLY_LINES_LIMIT", "REPLY_TEXT_LIMIT"]

#: Longest reply line accepted, CRLF included. RFC 5321 says 512; real
#: servers exceed it, so allow generous room while keeping the buffer bounded.
REPLY_LINE_LIMIT = 4096
#: Most lines in one multi-line reply (an EHLO reply has a dozen or so).
REPLY_LINES_LIMIT = 256
#: Reply text kept (Postfix: line_length_limit, 2048); later lines are checked, not kept.
REPLY_TEXT_LIMIT = 2048

# RFC 3463: status-code = class "." subject "." detail; class = "2"/"4"/"5";
# ASCII digits, as Postfix's dsn_valid() reads them.
_STATUS_RE = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |$)")
_GREETING = "<greeting>"
_END_OF_DATA = "<end of data>"


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`ClientSession.next_event` when more bytes are needed.
NEED_DATA = _NeedData()


class ClientProtocolError(Exception):
    """The server broke the protocol (malformed or oversized reply, bytes
    after the STARTTLS reply, a reply nobody asked for)."""


class ClientSession:
    """One SMTP client conversation, from the greeting to QUIT.

    The first reply expected is the server's greeting. Each
    :meth:`send_command` and :meth:`send_data` queues one more expected
    reply; :attr:`awaiting` tells which commands still wait for theirs.
    ``line_length_limit`` is smtp_line_length_limit (0: no limit).
    """

    def __init__(self, *, line_length_limit: int = 998) -> None:
        self.line_length_limit = line_length_limit
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._kept = 0          # characters in self._lines
        self._count = 0         # lines of the reply read so far, kept or not
        self._awaiting: deque[str] = deque([_GREETING])
        self._tls_pending = False
        #: ESMTP keywords from the last EHLO reply, e.g. {"SIZE": "10240000"}.
        self.extensions: dict[str, str] = {}

    # --- input ---------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the server (b"" is not allowed: EOF is
        the caller's business, it ends the conversation)."""
        if self._tls_pending and data:
            raise ClientProtocolError("plaintext received after the STARTTLS reply")
        self._buffer += data

    def next_event(self) -> Reply | _NeedData:
        """The next complete reply, or :data:`NEED_DATA`."""
        while True:
            line = self._next_line()
            if line is None:
                return NEED_DATA
            if self._take_line(line):
                return self._finish_reply()

    def _next_line(self) -> str | None:
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) >= REPLY_LINE_LIMIT:
                raise ClientProtocolError("reply line too long")
            return None
        if end + 1 > REPLY_LINE_LIMIT:
            raise ClientProtocolError("reply line too long")
        raw = bytes(self._buffer[:end]).rstrip(b"\r")
        del self._buffer[:end + 1]
        return printable(raw.decode("utf-8", "replace"))

    def _take_line(self, line: str) -> bool:
        """Add one reply line; True when it was the last line of a reply."""
        code, sep = line[:3], line[3:4]
        if len(code) != 3 or not code.isdigit() or code[0] not in "2345" or sep not in ("", " ", "-"):
            raise ClientProtocolError(f"malformed reply line: {line[:80]!r}")
        if self._lines and self._lines[0][:3] != code:
            raise ClientProtocolError(f"reply code changed within a reply: {line[:80]!r}")
        if not self._awaiting:
            raise ClientProtocolError(f"unexpected reply: {line[:80]!r}")
        if self._kept < REPLY_TEXT_LIMIT:
            self._lines.append(line)
            self._kept += len(line) + 1
        self._count += 1
        if self._count > REPLY_LINES_LIMIT:
            raise ClientProtocolError("too many lines in one reply")
        return sep != "-"

    def _finish_reply(self) -> Reply:
        lines, self._lines, self._kept, self._count = self._lines, [], 0, 0
        reply = _parse_reply(lines)
        command = self._awaiting.popleft()
        if command == "EHLO" and reply.is_positive:
            self.extensions = _parse_extensions(reply.text)
        elif command == "STARTTLS" and reply.code == 220:
            if self._buffer:
                raise ClientProtocolError("plaintext received after the STARTTLS reply")
            self._tls_pending = True
        return reply

    # --- output --------------------------------------------------------------
    def send_command(self, command: str) -> bytes:
        """The wire bytes of one command line (CRLF appended); its reply is
        now awaited. Raises ValueError on a line break inside the command."""
        if "\r" in command or "\n" in command:
            raise ValueError("an SMTP command is one line")
        verb = command.split(" ", 1)[0].upper()
        if verb == "STARTTLS" and self._awaiting:
            raise ValueError("STARTTLS must not be pipelined")
        self._awaiting.append(verb)
        return command.encode("utf-8") + b"\r\n"

    def send_data(self, wire_content: bytes) -> bytes:
        """The message content and the end-of-data mark, after a 354 reply.

        ``wire_content`` is already in SMTP wire form (CRLF lines,
        dot-stuffed), as the queue stores it; it must be empty or end with
        CRLF, otherwise the ".\\r\\n" would not start a line. Lines longer
        than ``line_length_limit`` are broken (:func:`break_long_lines`).
        """
        if wire_content and not wire_content.endswith(b"\r\n"):
            raise ValueError("message content must end with CRLF")
        self._awaiting.append(_END_OF_DATA)
        return break_long_lines(wire_content, self.line_length_limit) + b".\r\n"

    def tls_started(self) -> None:
        """Call once the TLS handshake is done: the old EHLO keywords no
        longer hold (RFC 3207 section 4.2), a new EHLO must be sent."""
        self._tls_pending = False
        self.extensions = {}

    @property
    def awaiting(self) -> tuple[str, ...]:
        """Commands (upper-case verbs) whose replies have not arrived yet."""
        return tuple(self._awaiting)


def _parse_reply(lines: list[str]) -> Reply:
    """One Reply from its lines: code, enhanced status, text ("\\n" joined)."""
    code = int(lines[0][:3])
    texts = [line[4:] for line in lines]
    match = _STATUS_RE.match(texts[0])
    status = ""
    if match and same_class(match.group(1), code):
        status = "{}.{}.{}".format(*match.groups())
        texts = [_strip_status(text, status) for text in texts]
    return Reply(code, status, "\n".join(texts))


def _strip_status(text: str, status: str) -> str:
    if text == status:
        return ""
    if text.startswith(status + " "):
        return text[len(status) + 1:]
    return text


def _parse_extensions(text: str) -> dict[str, str]:
    """ESMTP keywords from an EHLO reply text; the first line is the
    server's name and greeting, not a keyword."""
    extensions = {}
    for line in text.split("\n")[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            extensions[keyword.upper()] = params.strip()
    return extensions

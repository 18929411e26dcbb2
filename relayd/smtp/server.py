"""The sans-I/O SMTP server session: bytes in, events out, replies in, bytes out.

Modelled on h11's ``_connection.py``. The driver feeds received bytes with
``receive_data()``, takes events from ``next_event()`` until it returns
NEED_DATA, answers each event that owes a reply with ``send(reply)`` and
writes the collected bytes in one go (RFC 2920 pipelining). The core never
does I/O and never reads a clock.

Rules (RFC 5321/1869/2920/3207/6152, Postfix smtpd.c):

* Every event except DataChunk and ConnectionClosed owes exactly one reply;
  ``next_event()`` refuses to run while one is owed, so pipelined commands
  are answered strictly in order.
* State changes when the reply is sent, never when the command is parsed:

  ====================  =============  ======================================
  event                 reply          effect
  ====================  =============  ======================================
  Helo                  2xx            helo_name set; transaction reset
  Mail                  2xx            transaction opened (sender)
  Rcpt                  2xx            recipient added
  Data                  354            data mode
  DataEnd               any            transaction ended
  Rset                  2xx            transaction reset
  StartTLS              220            buffered input discarded (CVE-2011-0411);
                                       wait for starttls_done()
  Auth / AuthResponse   334 / 235      next line is an AuthResponse / authenticated
  BadCommand in AUTH    any            the exchange is over (a line too long,
                                       not UTF-8 or with NUL: 500 / 535)
  any, or unsolicited   221, 421, 521  session closed; later input ignored
  ====================  =============  ======================================

* Sequence: MAIL needs HELO/EHLO only with helo_required; no nested MAIL;
  RCPT needs MAIL; DATA needs an accepted RCPT (503 need RCPT outside a
  transaction, 554 no valid recipients inside one, as Postfix); AUTH needs
  EHLO and no transaction, and TLS when auth_tls_only (538; AUTH is not
  offered before); STARTTLS needs it offered and TLS not active.
* A command line longer than line_length_limit is skipped up to its end and
  answered 500 (the buffer never holds more than about the limit).
* Bare LF ends a command line, except with bare_newline "reject": then the
  session ends with 550 (ProtocolError). In DATA see relayd.smtp.data.
"""
from __future__ import annotations

import enum
from functools import lru_cache

from relayd.smtp import grammar
from relayd.smtp.data import DataReader
from relayd.smtp.events import (
    NEED_DATA, Auth, AuthResponse, BadCommand, ConnectionClosed, Data, DataChunk, DataEnd,
    Expn, Helo, Help, Mail, Noop, Quit, Rcpt, Rset, StartTLS, Vrfy)
from relayd.smtp.replies import (
    R220_GREETING, R221_BREAK_RULES, R250_HELO, R354_START_DATA, R500_BAD_SYNTAX,
    R500_BAD_UTF8, R500_COMMAND_TOO_LONG, R500_SASL_RESPONSE_LIMIT, R500_UNRECOGNIZED,
    R501_BAD_MESSAGE_SIZE, R501_BAD_PARAMETER, R501_BAD_RECIPIENT, R501_BAD_SENDER,
    R501_HELO_SYNTAX, R501_MAIL_SYNTAX, R501_RCPT_SYNTAX, R501_SYNTAX, R502_NOT_IMPLEMENTED,
    R503_ALREADY_AUTHENTICATED, R503_AUTH_NOT_ENABLED, R503_MAIL_IN_PROGRESS,
    R503_NEED_HELO, R503_NEED_MAIL, R503_NEED_RCPT, R503_NESTED_MAIL, R535_SASL_BAD_RESPONSE,
    R550_BARE_NEWLINE, R552_MESSAGE_TOO_BIG, R553_SMTPUTF8_REQUIRED, R554_NO_VALID_RECIPIENTS,
    R538_ENCRYPTION_REQUIRED, R554_TLS_ACTIVE, R555_UNSUPPORTED_OPTION, Reply)

BARE_NEWLINE_MODES = ("normalize", "yes", "note", "reject", "no")
_CLOSING_CODES = frozenset({221, 421, 521})
_BODY_TYPES = frozenset({"7BIT", "8BITMIME"})


class State(enum.Enum):
    """Where a server session is, as ``ServerSession.state`` reports it."""

    CONNECTED = "connected"          # no HELO/EHLO accepted yet
    GREETED = "greeted"              # HELO/EHLO accepted, no transaction
    TRANSACTION = "transaction"      # MAIL accepted
    DATA = "data"                    # 354 sent, reading the message
    AUTH = "auth"                    # 334 sent, reading a SASL response
    TLS_HANDSHAKE = "tls-handshake"  # 220 to STARTTLS sent, waiting for starttls_done()
    CLOSED = "closed"                # 221/421/521 sent, or a protocol error


class ProtocolError(Exception):
    """A fatal protocol violation: the driver sends ``reply`` and closes."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


class _Mode(enum.Enum):
    COMMAND = 1
    DATA = 2
    AUTH = 3
    TLS_HANDSHAKE = 4
    CLOSED = 5


@lru_cache(maxsize=64)   # one banner per service
def _greeting(banner: str) -> bytes:
    return R220_GREETING.format(banner).to_bytes()


@lru_cache(maxsize=64)   # the keyword lists of a service, before and after STARTTLS
def _ehlo_reply(lines: tuple[str, ...]) -> Reply:
    return R250_HELO.format("\n".join(lines))


class ServerSession:
    """One SMTP server conversation, without I/O (see the module docstring).

    Read-only for the driver: ``state``, ``helo_name`` (None before an accepted
    HELO/EHLO), ``extended`` (it was EHLO), ``sender`` (None outside a
    transaction), ``recipients`` (accepted in this transaction),
    ``authenticated`` (a 235 was sent), ``tls_active``, ``buffered``.
    ``bare_newline`` is smtpd_forbid_bare_newline: "normalize" (also "yes",
    "note"), "reject" or "no"; it only changes how commands are read, since
    DATA accepts nothing but CRLF.CRLF as its end in every mode.
    """

    def __init__(self, *, hostname: str, message_size_limit: int = 10240000,
                 line_length_limit: int = 2048, bare_newline: str = "normalize",
                 helo_required: bool = False, vrfy_enabled: bool = True,
                 starttls_available: bool = False, auth_mechanisms: tuple[str, ...] = (),
                 tls_active: bool = False, auth_tls_only: bool = False) -> None:
        if bare_newline not in BARE_NEWLINE_MODES:
            raise ValueError(f"bad smtpd_forbid_bare_newline value: {bare_newline!r}")
        self.hostname = hostname
        self.message_size_limit = message_size_limit
        self.line_length_limit = line_length_limit
        self.reject_bare_newline = bare_newline == "reject"
        self.helo_required = helo_required
        self.vrfy_enabled = vrfy_enabled
        self.starttls_available = starttls_available
        self.auth_mechanisms = tuple(auth_mechanisms)
        self.auth_tls_only = auth_tls_only   # smtpd_tls_auth_only: no AUTH before TLS
        self._tls_active = tls_active
        self._buffer = bytearray()
        self._eof = False
        self._owed: object | None = None
        self._skipping = False
        self._data: DataReader | None = None
        self._mode = _Mode.COMMAND
        self._reset_session()

    # --- public state -------------------------------------------------------
    @property
    def state(self) -> State:
        """The session's protocol state."""
        if self._mode is not _Mode.COMMAND:
            return State[self._mode.name]
        if self.sender is not None:
            return State.TRANSACTION
        return State.GREETED if self.helo_name is not None else State.CONNECTED

    @property
    def tls_active(self) -> bool:
        """True once starttls_done() was called (or the session began in TLS)."""
        return self._tls_active

    @property
    def buffered(self) -> int:
        """Received bytes not yet parsed into events."""
        return len(self._buffer)

    @property
    def data_size(self) -> int:
        """In DATA: the message octets received so far (after dot-unstuffing),
        input not parsed yet included, as in Postfix's "after DATA (N bytes)"."""
        return 0 if self._data is None else self._data.size + len(self._buffer)

    # --- input --------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the client; b"" means the client closed."""
        if self._mode is _Mode.TLS_HANDSHAKE:
            raise RuntimeError("plaintext received while waiting for starttls_done()")
        if not data:
            self._eof = True
        elif self._mode is not _Mode.CLOSED:
            self._buffer += data

    def next_event(self):
        """The next event, or NEED_DATA. Raises ProtocolError on a fatal violation."""
        if self._owed is not None:
            raise RuntimeError(f"a reply is owed for {self._owed!r}")
        mode = self._mode
        if mode is _Mode.DATA:
            before = len(self._buffer)
            event = self._data.next_event(self._buffer)
            if event is None and len(self._buffer) < before:
                event = DataChunk(b"")  # lines read past the size limit: no content, but progress
            elif type(event) is DataEnd:
                self._owed = event
        elif mode is _Mode.COMMAND or mode is _Mode.AUTH:
            event = self._owed = self._next_command()
        elif mode is _Mode.CLOSED:
            return ConnectionClosed()
        else:
            raise RuntimeError("waiting for starttls_done()")
        if event is None:
            if not self._eof:
                return NEED_DATA
            self._close()
            return ConnectionClosed()
        return event

    # --- output -------------------------------------------------------------
    def send(self, reply: Reply) -> bytes:
        """The bytes that carry ``reply``; applies the state change it makes."""
        owed, self._owed = self._owed, None
        if owed is None and self._mode is not _Mode.CLOSED and reply.code not in _CLOSING_CODES:
            raise RuntimeError(f"no reply is owed: {reply}")
        if owed is not None:
            self._apply(owed, reply)
        if reply.code in _CLOSING_CODES:
            self._close()
        return reply.to_bytes()

    def greeting(self, banner: str) -> bytes:
        """The "220 <banner>" greeting bytes (smtpd_banner already expanded)."""
        return _greeting(banner)

    def ehlo_reply(self) -> Reply:
        """The multi-line 250 for EHLO, keywords in Postfix's order."""
        lines = [self.hostname, "PIPELINING"]
        lines.append(f"SIZE {self.message_size_limit}" if self.message_size_limit > 0 else "SIZE")
        if self.vrfy_enabled:
            lines.append("VRFY")
        if self.starttls_available and not self._tls_active:
            lines.append("STARTTLS")
        if self.auth_mechanisms and (self._tls_active or not self.auth_tls_only):
            lines.append("AUTH " + " ".join(self.auth_mechanisms))
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME"]
        return _ehlo_reply(tuple(lines))

    def starttls_done(self) -> None:
        """After the TLS handshake: forget everything said before it (RFC 3207 4.2)."""
        if self._mode is not _Mode.TLS_HANDSHAKE:
            raise RuntimeError("starttls_done() without an accepted STARTTLS")
        self._tls_active = True
        self._buffer.clear()
        self._mode = _Mode.COMMAND
        self._reset_session()

    # --- state changes ------------------------------------------------------
    def _reset_session(self) -> None:
        self.helo_name: str | None = None
        self.extended = False
        self.authenticated = False
        self._reset_transaction()

    def _reset_transaction(self) -> None:
        self.sender: str | None = None
        self.recipients: list[str] = []

    def _close(self) -> None:
        self._mode = _Mode.CLOSED
        self._buffer.clear()

    def _apply(self, event: object, reply: Reply) -> None:
        """Change state for ``reply`` sent in answer to ``event``."""
        ok = 200 <= reply.code < 300
        kind = type(event)   # the event classes are final: no isinstance() needed
        if kind is Rcpt and ok:
            self.recipients.append(event.recipient)
        elif kind is Mail and ok:
            self.sender, self.recipients = event.sender, []
        elif kind is Helo and ok:
            self._reset_transaction()
            self.helo_name, self.extended = event.name, event.extended
        elif kind is Data and reply.code == R354_START_DATA.code:
            self._mode = _Mode.DATA
            self._data = DataReader(
                message_size_limit=self.message_size_limit, max_line=self.line_length_limit,
                bare_lf_error=R550_BARE_NEWLINE.format(self.hostname)
                if self.reject_bare_newline else None)
        elif kind is DataEnd:
            self._mode, self._data = _Mode.COMMAND, None
            self._reset_transaction()
        elif kind is Rset and ok:
            self._reset_transaction()
        elif kind is StartTLS and reply.code == 220:
            # CVE-2011-0411: whatever followed STARTTLS in plaintext is dropped.
            self._buffer.clear()
            self._mode = _Mode.TLS_HANDSHAKE
        elif kind is Auth or kind is AuthResponse:
            self._mode = _Mode.AUTH if reply.code == 334 else _Mode.COMMAND
            self.authenticated = self.authenticated or reply.code == 235
        elif kind is BadCommand and self._mode is _Mode.AUTH:
            self._mode = _Mode.COMMAND   # the next line is a command again

    # --- command lines ----------------------------------------------------------
    def _next_command(self):
        """The event for the next complete line, or None when there is none yet."""
        line = self._next_line()
        if line is None:
            return None
        auth = self._mode is _Mode.AUTH   # a refused SASL response ends the exchange (_apply)
        if isinstance(line, BadCommand):
            return BadCommand(R500_SASL_RESPONSE_LIMIT) if auth else line
        try:   # Postfix checks UTF-8 first: a TLS ClientHello gets "bad UTF-8 syntax"
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return BadCommand(R535_SASL_BAD_RESPONSE if auth else R500_BAD_UTF8)
        if "\0" in text:
            return BadCommand(R535_SASL_BAD_RESPONSE if auth else R500_BAD_SYNTAX)
        # Postfix tokenises on white space, CR included; no CR reaches an argument.
        text = text.replace("\r", " ")
        if auth:
            return AuthResponse(text)
        return self._command(text)

    def _next_line(self) -> bytes | BadCommand | None:
        """Cut one line (without its ending) off the buffer, enforcing the limit."""
        buf = self._buffer
        newline = buf.find(b"\n")
        if self._skipping:
            if newline < 0:
                buf.clear()
                return None
            del buf[:newline + 1]
            self._skipping = False
            return BadCommand(R500_COMMAND_TOO_LONG.format(self.hostname))
        if newline < 0:
            if len(buf) > self.line_length_limit + 1:  # + 1: a CR of the CRLF
                buf.clear()
                self._skipping = True
            return None
        line = bytes(buf[:newline])
        del buf[:newline + 1]
        if line.endswith(b"\r"):
            line = line[:-1]
        elif self.reject_bare_newline:
            self._close()
            raise ProtocolError(R550_BARE_NEWLINE.format(self.hostname))
        if len(line) > self.line_length_limit:
            return BadCommand(R500_COMMAND_TOO_LONG.format(self.hostname))
        return line

    def _command(self, text: str):
        verb, argument = grammar.split_command(text)
        handler = _HANDLERS.get(verb)
        if handler is not None:   # no command verb is a forbidden one
            return handler(self, argument)
        if not verb:
            return BadCommand(R500_BAD_SYNTAX)
        if grammar.is_forbidden_command(verb):
            self._close()
            raise ProtocolError(R221_BREAK_RULES)
        return BadCommand(R500_UNRECOGNIZED)

    # --- one handler per command: sequence and syntax checks ---------------------
    def _helo(self, argument: str, extended: bool = False):
        if not argument:
            return BadCommand(R501_HELO_SYNTAX.format("EHLO" if extended else "HELO"))
        return Helo(" ".join(argument.split()), extended)

    def _ehlo(self, argument: str):
        return self._helo(argument, extended=True)

    def _mail(self, argument: str):
        if self.helo_required and self.helo_name is None:
            return BadCommand(R503_NEED_HELO)
        if self.sender is not None:
            return BadCommand(R503_NESTED_MAIL)
        try:
            path, rest = grammar.split_path_argument(argument, "FROM:")
            sender = grammar.parse_reverse_path(path)
        except grammar.MissingKeyword:
            return BadCommand(R501_MAIL_SYNTAX)
        except grammar.AddressSyntaxError:
            return BadCommand(R501_BAD_SENDER)
        if not sender.isascii():
            return BadCommand(_unicode_address_refusal(sender, R501_BAD_SENDER))
        return self._with_params(rest, lambda params: Mail(sender, params), self._mail_param_error)

    def _rcpt(self, argument: str):
        if self.sender is None:
            return BadCommand(R503_NEED_MAIL)
        try:
            path, rest = grammar.split_path_argument(argument, "TO:")
            recipient = grammar.parse_forward_path(path)
        except grammar.MissingKeyword:
            return BadCommand(R501_RCPT_SYNTAX)
        except grammar.AddressSyntaxError:
            return BadCommand(R501_BAD_RECIPIENT)
        if not recipient.isascii():
            return BadCommand(_unicode_address_refusal(recipient, R501_BAD_RECIPIENT))
        # No RCPT parameter is supported yet (NOTIFY/ORCPT come with DSN).
        return self._with_params(rest, lambda params: Rcpt(recipient, params), _unsupported)

    @staticmethod
    def _with_params(text: str, make, check):
        try:
            params = grammar.parse_esmtp_params(text)
        except grammar.ParameterSyntaxError as error:
            return BadCommand(R501_BAD_PARAMETER.format(error.keyword))
        for keyword, value in params.items():
            refusal = check(keyword, value)
            if refusal is not None:
                return BadCommand(refusal)
        return make(params)

    def _mail_param_error(self, keyword: str, value: str | None) -> Reply | None:
        """The refusal for one MAIL parameter (RFC 1870 SIZE, RFC 6152 BODY), or None."""
        if keyword == "SIZE":
            if value is None or not (value.isascii() and value.isdigit()):
                return R501_BAD_MESSAGE_SIZE
            if 0 < self.message_size_limit < int(value):
                return R552_MESSAGE_TOO_BIG
            return None
        if keyword == "BODY" and value is not None and value.upper() in _BODY_TYPES:
            return None
        if keyword == "AUTH" and self.auth_mechanisms:   # RFC 4954 section 5
            return None if value else R501_BAD_PARAMETER.format("AUTH")
        return _unsupported(keyword, value)

    def _data_command(self, argument: str):
        if not self.recipients:
            return BadCommand(R503_NEED_RCPT if self.sender is None else R554_NO_VALID_RECIPIENTS)
        if argument:
            return BadCommand(R501_SYNTAX.format("DATA"))
        return Data()

    def _rset(self, argument: str):
        return BadCommand(R501_SYNTAX.format("RSET")) if argument else Rset()

    def _noop(self, argument: str):
        # RFC 5321 4.1.1.9: "NOOP [ SP String ]", the string ignored (Postfix too).
        return Noop()

    def _quit(self, argument: str):
        return Quit()

    def _vrfy(self, argument: str):
        if not argument:
            return BadCommand(R501_SYNTAX.format("VRFY address"))
        if not argument.isascii():
            return BadCommand(_unicode_address_refusal(argument, R501_BAD_RECIPIENT))
        return Vrfy(argument)

    def _expn(self, argument: str):
        return Expn(argument)

    def _help(self, argument: str):
        return Help(argument)

    def _starttls(self, argument: str):
        if self._tls_active:
            return BadCommand(R554_TLS_ACTIVE)
        if not self.starttls_available:
            return BadCommand(R502_NOT_IMPLEMENTED)
        return BadCommand(R501_SYNTAX.format("STARTTLS")) if argument else StartTLS()

    def _auth(self, argument: str):
        if not self.extended:
            return BadCommand(R503_NEED_HELO)
        if not self.auth_mechanisms:
            return BadCommand(R503_AUTH_NOT_ENABLED)
        if self.sender is not None:
            return BadCommand(R503_MAIL_IN_PROGRESS)
        if self.auth_tls_only and not self._tls_active:
            return BadCommand(R538_ENCRYPTION_REQUIRED)
        if self.authenticated:
            return BadCommand(R503_ALREADY_AUTHENTICATED)
        words = argument.split()
        if not 1 <= len(words) <= 2:
            return BadCommand(R501_SYNTAX.format("AUTH mechanism"))
        return Auth(words[0].upper(), words[1] if len(words) == 2 else None)


def _unicode_address_refusal(address: str, bad_syntax: Reply) -> Reply:
    """The refusal of a non-ASCII address: relayd has no SMTPUTF8 (RFC 6531), so no
    client can declare it. As Postfix with strict_smtputf8: a non-ASCII domain is
    bad syntax without SMTPUTF8 (smtpd_check_addr), a non-ASCII local part 553 5.6.7."""
    _, at, domain = address.rpartition("@")
    return bad_syntax if at and not domain.isascii() else R553_SMTPUTF8_REQUIRED


def _unsupported(keyword: str, value: str | None) -> Reply:
    """555 for an ESMTP parameter relayd does not implement."""
    return R555_UNSUPPORTED_OPTION.format(keyword if value is None else f"{keyword}={value}")


_HANDLERS = {
    "HELO": ServerSession._helo, "EHLO": ServerSession._ehlo,
    "MAIL": ServerSession._mail, "RCPT": ServerSession._rcpt,
    "DATA": ServerSession._data_command, "RSET": ServerSession._rset,
    "NOOP": ServerSession._noop, "QUIT": ServerSession._quit,
    "VRFY": ServerSession._vrfy, "EXPN": ServerSession._expn, "HELP": ServerSession._help,
    "STARTTLS": ServerSession._starttls, "AUTH": ServerSession._auth,
}

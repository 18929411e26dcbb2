"""SMTP replies as values, and the catalogue of the standard ones.

A reply is a frozen (code, enhanced status code, text) triple. The standard
replies are worded as Postfix words them (src/smtpd/smtpd.c), so that log
tools and clients that match on texts keep working. Replies whose text takes
arguments hold ``{}`` placeholders; call :meth:`Reply.format` to fill them.
Tests compare against these values, never against literal strings.

The rules for enhanced status codes live here too, once: what one looks
like (:func:`split_status`, Postfix's dsn_valid/dsn_split) and that its
class is the reply code's class (:func:`with_class`, :meth:`Reply.with_code`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


_WIRE: dict = {}  # Reply -> its wire bytes


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: ``code`` (e.g. 250), ``status`` (RFC 3463, e.g. "2.1.0",
    or "" when the reply carries none) and ``text`` ("\\n" separates lines)."""

    code: int
    status: str
    text: str

    def format(self, *args: object) -> "Reply":
        """This reply with its ``{}`` placeholders filled in."""
        return Reply(self.code, self.status, self.text.format(*args))

    def with_text(self, text: str) -> "Reply":
        """The same code and status with another text."""
        return Reply(self.code, self.status, text)

    def with_code(self, code: int) -> "Reply":
        """This reply with reply code ``code``, its status's class made to match."""
        status = with_class(self.status, code)
        if (code, status) == (self.code, self.status):
            return self
        return Reply(code, status, self.text)

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def lines(self) -> list[str]:
        """The reply as protocol lines without CRLF, continuation marks set."""
        parts = self.text.split("\n")
        prefix = f"{self.status} " if self.status else ""
        out = []
        for i, part in enumerate(parts):
            sep = " " if i == len(parts) - 1 else "-"
            out.append(f"{self.code}{sep}{prefix}{part}")
        return out

    def to_bytes(self) -> bytes:
        """The reply as it goes on the wire (built once per distinct reply)."""
        data = _WIRE.get(self)
        if data is None:
            data = ("\r\n".join(self.lines()) + "\r\n").encode("utf-8", "replace")
            if len(_WIRE) < 4096:  # replies that name addresses vary: keep the cache small
                _WIRE[self] = data
        return data

    def __str__(self) -> str:
        return "\n".join(self.lines())


# RFC 3463 as Postfix's dsn_valid() reads it: class 2, 4 or 5, then 1-3 and
# 1-3 ASCII digits, then the end or white space.
_STATUS = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}(?=\s|$)")


def split_status(text: str) -> tuple[str, str]:
    """Postfix's dsn_split: ``"5.1.1 Who?"`` -> ``("5.1.1", "Who?")``; text
    that starts with no enhanced status code -> ``("", text)``."""
    match = _STATUS.match(text)
    if match is None:
        return "", text
    return match.group(), text[match.end():].lstrip()


def is_status(text: str) -> bool:
    """True when ``text`` is one enhanced status code and nothing else."""
    match = _STATUS.match(text)
    return match is not None and match.end() == len(text)


def same_class(status: str, code: int | str) -> bool:
    """True when ``status``'s class (first digit) is that of reply code ``code``."""
    return status[:1] == str(code)[:1]


def with_class(status: str, code: int | str) -> str:
    """``status`` with its class made that of ``code`` (a reply code, 550, or
    a class, "4"): a reply's enhanced status code never contradicts its code
    (Postfix smtpd_check_reject, smtp_proto). "" stays ""."""
    if not status or same_class(status, code):
        return status
    return str(code)[0] + status[1:]


# --- positive completion -------------------------------------------------
R211_SYSTEM_STATUS = Reply(211, "2.0.0", "{}")
R214_HELP = Reply(214, "2.0.0", "Commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET "
                                "STARTTLS VRFY")
R220_GREETING = Reply(220, "", "{}")
R220_READY_FOR_TLS = Reply(220, "2.0.0", "Ready to start TLS")
R221_BYE = Reply(221, "2.0.0", "Bye")
R250_OK = Reply(250, "2.0.0", "Ok")
R250_HELO = Reply(250, "", "{}")
R250_SENDER_OK = Reply(250, "2.1.0", "Ok")
R250_RECIPIENT_OK = Reply(250, "2.1.5", "Ok")
R250_QUEUED = Reply(250, "2.0.0", "Ok: queued as {}")
R252_VRFY = Reply(252, "2.0.0", "{}")

# --- intermediate --------------------------------------------------------
R354_START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")

# --- transient failures ----------------------------------------------------
R421_SHUTDOWN = Reply(421, "4.3.2", "{} Service shutting down, closing transmission channel")
R421_TIMEOUT = Reply(421, "4.4.2", "{} Error: timeout exceeded")
R421_TOO_MANY_ERRORS = Reply(421, "4.7.0", "{} Error: too many errors")
R421_TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "{} Error: too many connections")
R421_TOO_MANY_CLIENT_CONNECTIONS = Reply(421, "4.7.0", "{} Error: too many connections from {}")
R451_QUEUE_WRITE_ERROR = Reply(451, "4.3.0", "Error: queue file write error")
R451_TEMPORARY_FAILURE = Reply(451, "4.3.0", "Error: internal error")
R451_CONFIG_ERROR = Reply(451, "4.3.5", "Server configuration error")
R451_TEMPORARY_LOOKUP_FAILURE = Reply(451, "4.3.0", "<{}>: Temporary lookup failure")
R452_TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Error: too many recipients")
R452_INSUFFICIENT_STORAGE = Reply(452, "4.3.1", "Insufficient system storage")
R454_RELAY_DEFERRED = Reply(454, "4.7.1", "<{}>: Relay access denied")
R450_DEFER = Reply(450, "4.7.1", "{}")
R450_TOO_MANY_AUTH = Reply(450, "4.7.1", "Error: too many AUTH commands from {}")
R450_ACCESS_DENIED = Reply(450, "4.7.1", "<{}>: {} rejected: Access denied")

# --- permanent failures ----------------------------------------------------
R500_LINE_TOO_LONG = Reply(500, "5.5.2", "Error: line too long")
R501_HELO_SYNTAX = Reply(501, "", "Syntax: {} hostname")
R501_MAIL_SYNTAX = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
R501_RCPT_SYNTAX = Reply(501, "5.5.4", "Syntax: RCPT TO:<address>")
R501_BAD_SENDER = Reply(501, "5.1.7", "Bad sender address syntax")
R501_BAD_RECIPIENT = Reply(501, "5.1.3", "Bad recipient address syntax")
R501_BAD_PARAMETER = Reply(501, "5.5.4", "Bad {} parameter syntax")
R501_SYNTAX = Reply(501, "5.5.4", "Syntax: {}")
R502_VRFY_DISABLED = Reply(502, "5.5.1", "VRFY command is disabled")
R503_NEED_HELO = Reply(503, "5.5.1", "Error: send HELO/EHLO first")
R503_NESTED_MAIL = Reply(503, "5.5.1", "Error: nested MAIL command")
R503_NEED_MAIL = Reply(503, "5.5.1", "Error: need MAIL command")
R503_NEED_RCPT = Reply(503, "5.5.1", "Error: need RCPT command")
R503_TLS_ACTIVE = Reply(503, "5.5.1", "Error: TLS already active")
R521_BARE_NEWLINE = Reply(521, "5.5.2", "{} Error: bare <LF> received")
R552_MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed limit")
R553_SMTPUTF8_REQUIRED = Reply(553, "5.6.7", "Must declare SMTPUTF8 to send unicode address")
R554_NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "Error: no valid recipients")
R554_TOO_MANY_HOPS = Reply(554, "5.4.0", "Error: too many hops")
R554_RELAY_DENIED = Reply(554, "5.7.1", "<{}>: Relay access denied")
R554_REJECT = Reply(554, "5.7.1", "{}")
R554_ACCESS_DENIED = Reply(554, "5.7.1", "<{}>: {} rejected: Access denied")
R555_UNSUPPORTED_OPTION = Reply(555, "5.5.4", "Unsupported option: {}")

# --- protocol core (relayd/smtp/server.py), worded as Postfix smtpd.c --------
R221_BREAK_RULES = Reply(221, "2.7.0", "Error: I can break rules, too. Goodbye.")
R500_UNRECOGNIZED = Reply(500, "5.5.2", "Error: command not recognized")
R500_COMMAND_TOO_LONG = Reply(500, "5.5.2", "{} Error: command too long")
R500_BAD_SYNTAX = Reply(500, "5.5.2", "Error: bad syntax")
R500_BAD_UTF8 = Reply(500, "5.5.2", "Error: bad UTF-8 syntax")
R501_BAD_MESSAGE_SIZE = Reply(501, "5.5.4", "Bad message size syntax")
R502_NOT_IMPLEMENTED = Reply(502, "5.5.1", "Error: command not implemented")
R503_AUTH_NOT_ENABLED = Reply(503, "5.5.1", "Error: authentication not enabled")
R503_ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Error: already authenticated")
R503_MAIL_IN_PROGRESS = Reply(503, "5.5.1", "Error: MAIL transaction in progress")
# A SASL response the core cannot hand on ends the exchange, as smtpd_sasl_glue.c
# ends it (xsasl_dovecot_server.c's reason for a response that is not base64).
R500_SASL_RESPONSE_LIMIT = Reply(500, "5.5.6", "SASL response limit exceeded")
R535_SASL_BAD_RESPONSE = Reply(535, "5.7.8", "Error: authentication failed: "
                                             "Invalid base64 data in continued response")
# --- SMTP AUTH (relayd/edge/dialogue.py, relayd/sasl/), worded as smtpd_sasl_glue.c and
# smtpd_sasl_proto.c; where Postfix answers 535 or 504 RFC 4954 section 4 wants 501 / 538.
R235_AUTHENTICATED = Reply(235, "2.7.0", "Authentication successful")
R334_CHALLENGE = Reply(334, "", "{}")
R501_SASL_ABORTED = Reply(501, "5.7.0", "Authentication aborted")
R501_SASL_BAD_BASE64 = Reply(501, "5.5.2", "Invalid base64 data in {} response")
R501_SASL_MALFORMED = Reply(501, "5.5.2", "Malformed {} authentication message")
R535_SASL_FAILED = Reply(535, "5.7.8", "Error: authentication failed: {}")
R535_SASL_AUTHZID = R535_SASL_FAILED.format("authorization identity not allowed")
R454_SASL_TEMPORARY = Reply(454, "4.7.0", "Temporary authentication failure: {}")
R504_SASL_MECHANISM = Reply(504, "5.5.4", "Unsupported authentication mechanism: {}")
R538_ENCRYPTION_REQUIRED = Reply(538, "5.7.11",
                                 "Encryption required for requested authentication mechanism")
R503_MULTIPLE_AUTH_PARAMS = Reply(503, "5.5.4", "Error: multiple AUTH= options")
# smtpd_check.c reject_auth_sender_login_mismatch / reject_unauth_sender_login_mismatch
R553_SENDER_NOT_OWNED = Reply(553, "5.7.1", "<{}>: Sender address rejected: not owned by user {}")
R553_SENDER_NOT_LOGGED_IN = Reply(553, "5.7.1", "<{}>: Sender address rejected: not logged in")
R550_BARE_NEWLINE = Reply(550, "5.5.2", "{} Error: bare <LF> received")
R554_TLS_ACTIVE = Reply(554, "5.5.1", "Error: TLS already active")
R530_STARTTLS_FIRST = Reply(530, "5.7.0", "Must issue a STARTTLS command first")

# --- cleanup content checks (relayd/cleanup/), worded as cleanup_message.c + cleanup_strerror.c
R550_CONTENT_REJECTED = Reply(550, "5.7.1", "message content rejected")
R451_CONTENT_DEFERRED = Reply(451, "4.7.1", "service unavailable")

# --- recipient validation (relayd/checks/recipients.py), worded as smtpd_check.c ---
R550_USER_UNKNOWN = Reply(550, "5.1.1", "<{}>: {} rejected: User unknown{}")
R550_USER_MOVED = Reply(550, "5.1.6", "<{}>: {} rejected: User has moved to {}")

# --- restrictions (relayd/pipeline, relayd/checks), worded as Postfix smtpd_check.c ---
# Codes of the first two follow main.cf (access_map_reject_code, access_map_defer_code).
R554_ACCESS_REJECTED = Reply(554, "5.7.1", "<{}>: {} rejected: {}")
R450_ACCESS_DEFERRED = Reply(450, "4.7.1", "<{}>: {} rejected: {}")
R450_DEFER_IF_PERMIT = Reply(450, "4.7.0", "<{}>: {} rejected: defer_if_permit requested")
R450_DEFER_IF_REJECT = Reply(450, "4.7.0", "<{}>: {} rejected: defer_if_reject requested")
R504_NON_FQDN_HOSTNAME = Reply(504, "5.5.2", "<{}>: {} rejected: need fully-qualified hostname")
R504_NON_FQDN_ADDRESS = Reply(504, "5.5.2", "<{}>: {} rejected: need fully-qualified address")
R501_INVALID_HOSTNAME = Reply(501, "5.5.2", "<{}>: {} rejected: Invalid name")
R501_INVALID_HOSTADDR = Reply(501, "5.5.2", "<{}>: {} rejected: invalid ip address")
R503_UNAUTH_PIPELINING = Reply(503, "5.5.0",
                               "<{}>: {} rejected: Improper use of SMTP command pipelining")
R503_ACCESS_DENIED = Reply(503, "5.7.0", "Error: access denied for {}")

# --- client names and DNS (relayd/checks/unknown.py), worded as smtpd_check.c; the codes
# follow main.cf (unknown_client_reject_code, unknown_hostname_reject_code,
# unknown_address_reject_code; 450 on a temporary failure), the nullMX ones are fixed.
R450_UNKNOWN_CLIENT = Reply(450, "4.7.25", "Client host rejected: cannot find your hostname, [{}]")
R450_UNKNOWN_REVERSE_CLIENT = Reply(
    450, "4.7.1", "Client host rejected: cannot find your reverse hostname, [{}]")
R450_HELO_NOT_FOUND = Reply(450, "4.7.1", "<{}>: Helo command rejected: Host not found")
R450_HELO_MALFORMED_DNS = Reply(
    450, "4.7.1", "<{}>: Helo command rejected: Malformed DNS server reply")
R450_SENDER_DOMAIN_NOT_FOUND = Reply(
    450, "4.1.8", "<{}>: Sender address rejected: Domain not found")
R450_SENDER_MALFORMED_DNS = Reply(
    450, "4.1.8", "<{}>: Sender address rejected: Malformed DNS server reply")
R450_RECIPIENT_DOMAIN_NOT_FOUND = Reply(
    450, "4.1.2", "<{}>: Recipient address rejected: Domain not found")
R450_RECIPIENT_MALFORMED_DNS = Reply(
    450, "4.1.2", "<{}>: Recipient address rejected: Malformed DNS server reply")
R550_SENDER_NULL_MX = Reply(
    550, "5.7.27", "<{}>: Sender address rejected: Domain {} does not accept mail (nullMX)")
R556_RECIPIENT_NULL_MX = Reply(
    556, "5.1.10", "<{}>: Recipient address rejected: Domain {} does not accept mail (nullMX)")

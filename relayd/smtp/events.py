"""Events the SMTP server protocol core hands to the session driver.

Each client command becomes one event; the driver answers every event that
owes a reply with exactly one :class:`~relayd.smtp.replies.Reply` through
``ServerSession.send()``. :class:`DataChunk` and :class:`ConnectionClosed`
owe no reply. Events are frozen values, so a plugin can keep one.
"""
from __future__ import annotations

from dataclasses import dataclass

from relayd.smtp.replies import Reply


class _Sentinel:
    """A named singleton, compared with ``is``."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: ``next_event()`` returns this when it needs more bytes from the client.
NEED_DATA = _Sentinel("NEED_DATA")


@dataclass(frozen=True, slots=True)
class Helo:
    """HELO (``extended=False``) or EHLO (``extended=True``) with its argument."""

    name: str
    extended: bool


@dataclass(frozen=True, slots=True)
class Mail:
    """MAIL FROM; ``sender`` without <>, "" for the null sender. ``params``
    keys are upper-case ESMTP keywords, values as sent (None: no "=")."""

    sender: str
    params: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class Rcpt:
    """RCPT TO; ``recipient`` without <>, source routes kept as written."""

    recipient: str
    params: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class Data:
    """DATA: answer R354_START_DATA to receive the content, or a rejection."""


@dataclass(frozen=True, slots=True)
class DataChunk:
    """Message content in wire form: whole CRLF lines, still dot-stuffed,
    without the final ".\\r\\n" (a very long line may be split). Owes no reply.
    Empty when lines arrived past message_size_limit and were dropped: the
    client made progress (a session deadline moves), there is nothing to store.
    ``checked``: the DATA reader found the bytes clean as received (no NUL, CR
    and LF only as CRLF, no end of data inside) with the queue's own check
    (:mod:`relayd.smtp.wireform`), so the queue need not scan them again."""

    data: bytes
    checked: bool = False


@dataclass(frozen=True, slots=True)
class DataEnd:
    """End of the message. ``size`` counts the octets after dot-unstuffing.
    When ``error`` is set the content was refused: discard what was stored
    and send ``error``."""

    size: int
    error: Reply | None


@dataclass(frozen=True, slots=True)
class Rset:
    """RSET."""


@dataclass(frozen=True, slots=True)
class Noop:
    """NOOP."""


@dataclass(frozen=True, slots=True)
class Quit:
    """QUIT: answer R221_BYE; the core then ignores anything else."""


@dataclass(frozen=True, slots=True)
class Vrfy:
    """VRFY with its (non-empty) argument; the driver applies disable_vrfy_command."""

    argument: str


@dataclass(frozen=True, slots=True)
class Expn:
    """EXPN; Postfix has no EXPN, so the driver normally answers R500_UNRECOGNIZED."""

    argument: str


@dataclass(frozen=True, slots=True)
class Help:
    """HELP with its argument ("" when none)."""

    argument: str


@dataclass(frozen=True, slots=True)
class StartTLS:
    """STARTTLS (already checked: offered, not active, no argument)."""


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH mechanism [initial-response]; mechanism upper-cased."""

    mechanism: str
    initial_response: str | None


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """One client line of a SASL exchange, after the driver sent a 334."""

    data: str


@dataclass(frozen=True, slots=True)
class BadCommand:
    """A syntax or sequence error decided by the core: send ``reply``
    and count one error against the soft/hard error limits."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The client closed its side (or the session is over). Owes no reply."""


Event = (Helo | Mail | Rcpt | Data | DataChunk | DataEnd | Rset | Noop | Quit | Vrfy
         | Expn | Help | StartTLS | Auth | AuthResponse | BadCommand | ConnectionClosed)

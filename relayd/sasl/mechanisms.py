"""The SASL mechanisms PLAIN (RFC 4616) and LOGIN, as sans-I/O exchanges.

An exchange turns the AUTH command's initial response and the client's
later lines into a :class:`Credentials` (the back end then checks them), a
:class:`Challenge` to send as "334 base64", or a :class:`Refusal` with its
RFC 4954 reply. It never sees a password store: both back ends share it.
The "*" cancel and the 334 framing are the dialogue's; lines arrive here
still base64-encoded.
"""
from __future__ import annotations

import binascii
from base64 import b64decode, b64encode
from dataclasses import dataclass

from relayd.smtp.replies import (R501_SASL_BAD_BASE64, R501_SASL_MALFORMED, R535_SASL_AUTHZID,
                                 Reply)

__all__ = ["MECHANISMS", "Challenge", "Credentials", "Refusal", "start"]


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send "334 " + base64(``data``) and pass the client's next line to ``respond``."""

    data: bytes

    def line(self) -> str:
        return b64encode(self.data).decode("ascii")


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the client claims: check ``password`` for ``username``."""

    username: str
    password: bytes = b""

    def __repr__(self) -> str:   # never a password in a log or a traceback
        return f"Credentials(username={self.username!r})"


@dataclass(frozen=True, slots=True)
class Refusal:
    """The exchange failed before any password check; ``username`` if known, for the log."""

    reply: Reply
    username: str = ""


def _decode(text: str, where: str) -> bytes | Refusal:
    # RFC 4954: "=" alone is an empty initial response.
    if text == "=":
        return b""
    try:
        return b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return Refusal(R501_SASL_BAD_BASE64.format(where))


def _text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


class Plain:
    """PLAIN: one message "authzid NUL authcid NUL passwd" (RFC 4616)."""

    name = "PLAIN"

    def start(self, initial: str | None):
        if initial is None:
            return Challenge(b"")   # "334 " and the client sends the message
        return self._message(initial, "initial")

    def respond(self, line: str):
        return self._message(line, "continued")

    @staticmethod
    def _message(text: str, where: str):
        data = _decode(text, where)
        if isinstance(data, Refusal):
            return data
        parts = data.split(b"\0")
        if len(parts) != 3 or not parts[1] or len(parts[2]) == 0:
            return Refusal(R501_SASL_MALFORMED.format("PLAIN"))
        authzid, username = _text(parts[0]), _text(parts[1])
        if authzid is None or username is None:
            return Refusal(R501_SASL_MALFORMED.format("PLAIN"))
        # Acting as someone else needs a proxy-authorisation policy relayd does not have.
        if authzid and authzid != username:
            return Refusal(R535_SASL_AUTHZID, username)
        return Credentials(username, parts[2])


class Login:
    """LOGIN: "Username:" then "Password:" challenges (draft-murchison-sasl-login)."""

    name = "LOGIN"

    def __init__(self) -> None:
        self.username: str | None = None

    def start(self, initial: str | None):
        if initial is None:
            return Challenge(b"Username:")
        return self.respond(initial, "initial")

    def respond(self, line: str, where: str = "continued"):
        data = _decode(line, where)
        if isinstance(data, Refusal):
            return data
        if self.username is None:
            username = _text(data)
            if not username:
                return Refusal(R501_SASL_MALFORMED.format("LOGIN"))
            self.username = username
            return Challenge(b"Password:")
        return Credentials(self.username, data)


MECHANISMS = {"PLAIN": Plain, "LOGIN": Login}


def start(mechanism: str):
    """A new exchange for ``mechanism`` (upper case), or None when it is unknown."""
    cls = MECHANISMS.get(mechanism)
    return None if cls is None else cls()

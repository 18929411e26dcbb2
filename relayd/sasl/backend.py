"""What a password back end answers, and the back end smtpd_sasl_type names.

A back end has ``mechanisms()`` (what EHLO offers) and ``verify(username,
password, client)`` giving an :class:`AuthResult` (``client``, an
:class:`AuthClient`, is for a back end that wants to know who asks). ``verify`` may wait (a thread
pool, a socket) but only cooperatively: the session's greenlet waits, the
event loop does not. A back end that cannot answer says TEMP, never OK.
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["OK", "FAIL", "TEMP", "AuthClient", "AuthResult", "open_backend"]

OK, FAIL, TEMP = "ok", "fail", "temp"


class AuthResult(NamedTuple):
    """``status`` OK, FAIL (535) or TEMP (454); ``reason`` for the reply and the log;
    ``username`` the back end's name for the user when it has its own (Dovecot's user=)."""

    status: str
    reason: str = ""
    username: str = ""


class AuthClient(NamedTuple):
    """Who asks: the client's address, the server's address it connected to,
    and whether the session is under TLS (Dovecot's rip=, lip=, secured)."""

    addr: str
    local_addr: str = ""
    secured: bool = False


AUTHENTICATED = AuthResult(OK)
# What the reply says of a wrong user or password, as Cyrus SASL words it for Postfix.
BAD_CREDENTIALS = AuthResult(FAIL, "authentication failure")


def open_backend(config):
    """The back end ``smtpd_sasl_type`` selects, or None when smtpd_sasl_auth_enable is off."""
    if not config["smtpd_sasl_auth_enable"]:
        return None
    if config["smtpd_sasl_type"] == "dovecot":
        from relayd.sasl.dovecot import DovecotBackend
        return DovecotBackend(config)
    from relayd.sasl.table import TableBackend
    return TableBackend(config)

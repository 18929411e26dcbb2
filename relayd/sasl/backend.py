"""What a password back end answers, and the back end smtpd_sasl_type names.

A back end has ``mechanisms()`` (what EHLO offers) and ``verify(username,
password)`` giving an :class:`AuthResult`. ``verify`` may wait (a thread
pool, a socket) but only cooperatively: the session's greenlet waits, the
event loop does not. A back end that cannot answer says TEMP, never OK.
"""
from __future__ import annotations

from typing import NamedTuple

from relayd.config.errors import ConfigError

__all__ = ["OK", "FAIL", "TEMP", "AuthResult", "open_backend"]

OK, FAIL, TEMP = "ok", "fail", "temp"


class AuthResult(NamedTuple):
    """``status`` OK, FAIL (535) or TEMP (454); ``reason`` for the reply and the log."""

    status: str
    reason: str = ""


AUTHENTICATED = AuthResult(OK)
# What the reply says of a wrong user or password, as Cyrus SASL words it for Postfix.
BAD_CREDENTIALS = AuthResult(FAIL, "authentication failure")


def open_backend(config):
    """The back end ``smtpd_sasl_type`` selects, or None when smtpd_sasl_auth_enable is off."""
    if not config["smtpd_sasl_auth_enable"]:
        return None
    if config["smtpd_sasl_type"] == "dovecot":
        # The dovecot back end (relayd/sasl/dovecot.py) is not written yet: refuse to start.
        raise ConfigError("smtpd_sasl_type = dovecot is not available yet",
                          parameter="smtpd_sasl_type")
    from relayd.sasl.table import TableBackend
    return TableBackend(config)

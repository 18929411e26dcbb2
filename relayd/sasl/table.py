"""``smtpd_sasl_type = relayd``: passwords from relayd_sasl_password_maps.

The table (any TYPE:NAME relayd reads) maps a user name to a crypt(3)
SHA-512 hash; the check (5000 rounds of SHA-512) runs in gevent's thread
pool so the event loop goes on serving other sessions. An unknown user costs
the same hash computation as a known one, so timing does not tell which
user names exist.
"""
from __future__ import annotations

import logging

import gevent

from relayd.rewrite.tables import open_tables
from relayd.sasl import shacrypt
from relayd.sasl.backend import AUTHENTICATED, BAD_CREDENTIALS, TEMP, AuthResult
from relayd.tables.base import TemporaryLookupError
from relayd.tables.maps import Maps

log = logging.getLogger("relayd.smtpd")

_PARAMETER = "relayd_sasl_password_maps"
# Hashed in place of a missing user's hash (the password "", a fixed salt).
_DUMMY = shacrypt.sha512_crypt(b"", "relayd.no.user")


class TableBackend:
    """Check passwords against the hashes in relayd_sasl_password_maps."""

    def __init__(self, config):
        self.maps = Maps(_PARAMETER, open_tables(config, _PARAMETER))

    def mechanisms(self) -> tuple[str, ...]:
        return ("PLAIN", "LOGIN")

    def verify(self, username: str, password: bytes, client=None) -> AuthResult:
        """``client`` is not needed: the table is the same for everyone."""
        try:
            hashed = self.maps.find(username)
        except TemporaryLookupError:
            return AuthResult(TEMP, "Authentication backend error")
        if hashed is None:
            hashed = _DUMMY
            password = b"\0"   # the dummy never matches
        ok = gevent.get_hub().threadpool.apply(shacrypt.verify, (password, hashed))
        return AUTHENTICATED if ok else BAD_CREDENTIALS

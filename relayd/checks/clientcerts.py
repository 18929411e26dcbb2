"""Relay by TLS client certificate: ``permit_tls_clientcerts`` and
``permit_tls_all_clientcerts``, as smtpd_check.c's permit_tls_clientcerts().

``permit_tls_all_clientcerts`` permits any client whose certificate
verified against smtpd_tls_CAfile (Trusted). ``permit_tls_clientcerts``
permits a client whose certificate's public key fingerprint, or else the
certificate's fingerprint, is a key of a relay_clientcerts table (Postfix's
format: ``AB:CD:...:EF  comment``); the certificate need not be trusted.
Both need smtpd_tls_ask_ccert = yes: without it no certificate is asked for
and Postfix's warning says so. The facts come from the session view
(:class:`~relayd.pipeline.context.SessionView`), set when the handshake
completed.
"""
from __future__ import annotations

import logging

from relayd.config.derived import PerConfig
from relayd.pipeline.context import CheckContext
from relayd.pipeline.verdicts import DUNNO, OK, Verdict
from relayd.rewrite.tables import open_tables
from relayd.tables.base import TemporaryLookupError
from relayd.tables.maps import Maps

log = logging.getLogger("relayd.smtpd")


class RelayClientCerts(PerConfig):
    """relay_clientcerts of one configuration, opened once."""

    def __init__(self, config):
        self.maps = Maps("relay_clientcerts", open_tables(config, "relay_clientcerts"))


def _open_relay_clientcerts(args: tuple[str, ...], config) -> None:
    """Setup: open the tables at startup, so that a bad one stops it."""
    RelayClientCerts.of(config)


def _clientcerts(ctx: CheckContext, permit_all: bool) -> Verdict:
    s = ctx.session
    if not s.tls_active:
        return DUNNO
    if permit_all and s.ccert_trusted:
        return OK
    if not s.ccert_fingerprint:
        if not ctx.config["smtpd_tls_ask_ccert"]:
            name = "permit_tls_all_clientcerts" if permit_all else "permit_tls_clientcerts"
            log.warning('%s is requested, but "smtpd_tls_ask_ccert = no"', name)
        return DUNNO
    if permit_all:
        return DUNNO
    maps = RelayClientCerts.of(ctx.config).maps
    try:
        for key in (s.ccert_pubkey_fingerprint, s.ccert_fingerprint):
            if maps.find(key) is not None:
                return OK
    except TemporaryLookupError:
        log.warning("relay_clientcerts: lookup error for fingerprint '%s', pkey fingerprint %s",
                    s.ccert_pubkey_fingerprint, s.ccert_fingerprint)
        raise
    return DUNNO


def permit_tls_clientcerts(ctx: CheckContext) -> Verdict:
    """permit_tls_clientcerts: the client certificate's fingerprint is in relay_clientcerts."""
    return _clientcerts(ctx, permit_all=False)


def permit_tls_all_clientcerts(ctx: CheckContext) -> Verdict:
    """permit_tls_all_clientcerts: the client certificate verified (smtpd_tls_CAfile)."""
    return _clientcerts(ctx, permit_all=True)


def register(registry) -> None:
    """Entry point of the built-in client certificate plugin."""
    registry.add("permit_tls_clientcerts", permit_tls_clientcerts,
                 setup=_open_relay_clientcerts)
    registry.add("permit_tls_all_clientcerts", permit_tls_all_clientcerts)

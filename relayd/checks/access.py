"""Access maps: check_client_access, check_reverse_client_hostname_access,
check_helo_access, check_sender_access, check_recipient_access, each naming
one lookup table (access(5)).

The table is opened when the restriction list is compiled (a bad table
stops startup). The key search order is access(5)'s
(:mod:`relayd.tables.search`), put to the table by
:class:`relayd.tables.maps.Maps`; the value found becomes a verdict through
:func:`relayd.checks.actions.access_verdict`. A table that cannot answer
gives Postfix's ``451 4.3.5 <name>: Class rejected: Server configuration
error``.
"""
from __future__ import annotations

import logging

from relayd.addresses import split_address
from relayd.checks.actions import access_verdict
from relayd.checks.names import (CLIENT_CLASS, HELO_CLASS, RECIPIENT_CLASS,
                                 REVERSE_CLIENT_CLASS, SENDER_CLASS, client_name)
from relayd.config.derived import PerConfig
from relayd.domains import AddressClasses
from relayd.pipeline.context import CheckContext
from relayd.pipeline.verdicts import DUNNO, Defer, Permit, Verdict
from relayd.smtp.replies import R451_CONFIG_ERROR
from relayd.tables.base import TemporaryLookupError, open_table
from relayd.tables.maps import Maps
from relayd.tables.search import address_queries, host_queries, hostname_queries

log = logging.getLogger("relayd.smtpd")

# Postfix answers a table that cannot answer with this access value (check_access).
_LOOKUP_FAILED = "451 4.3.5 Server configuration error"


class AccessTables(PerConfig):
    """The tables one configuration's access checks use, opened once."""

    def __init__(self, config):
        self.config = config
        self.tables: dict[str, Maps] = {}
        self.parent_matches = "smtpd_access_maps" in config["parent_domain_matches_subdomains"]
        self.delimiters = config["recipient_delimiter"]
        self.null_key = config["smtpd_null_access_lookup_key"]

    def table(self, spec: str) -> Maps:
        """The open table ``spec`` (as a one-table list); ConfigError if it cannot be opened."""
        maps = self.tables.get(spec)
        if maps is None:
            maps = self.tables[spec] = Maps(spec, [open_table(spec, self.config)])
        return maps


def open_access_table(args: tuple[str, ...], config) -> None:
    """Setup of every access check: open its table at startup."""
    AccessTables.of(config).table(args[0])


def _verdict(ctx: CheckContext, queries, name: str, reply_class: str, stage: str) -> Verdict:
    tables = AccessTables.of(ctx.config)
    spec = ctx.args[0]
    try:
        found = tables.table(spec).search(queries)
    except TemporaryLookupError:
        return access_verdict(_LOOKUP_FAILED, name=name, reply_class=reply_class, stage=stage,
                              config=ctx.config, table=spec)
    if found is None:
        return DUNNO
    return access_verdict(found.value, name=name, reply_class=reply_class, stage=stage,
                          config=ctx.config, table=spec)


def check_client_access(ctx: CheckContext) -> Verdict:
    """check_client_access type:table — client host name, parents, address."""
    s = ctx.session
    tables = AccessTables.of(ctx.config)
    queries = host_queries(s.client_name, s.client_addr,
                           parent_matches_subdomains=tables.parent_matches)
    return _verdict(ctx, queries, client_name(ctx), CLIENT_CLASS, "client")


def check_reverse_client_hostname_access(ctx: CheckContext) -> Verdict:
    """check_reverse_client_hostname_access type:table — the client's PTR name
    (verified or not), parents, address. An OK is refused with 451 4.3.5, as
    Postfix's forbid_allowlist does: a name anyone can claim must not permit."""
    s = ctx.session
    tables = AccessTables.of(ctx.config)
    queries = host_queries(s.reverse_client_name, s.client_addr,
                           parent_matches_subdomains=tables.parent_matches)
    verdict = _verdict(ctx, queries, s.reverse_client_name, REVERSE_CLIENT_CLASS, "client")
    if isinstance(verdict, Permit):
        log.warning("restriction check_reverse_client_hostname_access returns OK for %s",
                    s.reverse_client_name)
        log.warning("this is not allowed for security reasons")
        log.warning("use DUNNO instead of OK if you want to make an exception")
        return Defer(R451_CONFIG_ERROR)
    return verdict


def check_helo_access(ctx: CheckContext) -> Verdict:
    """check_helo_access type:table — the HELO/EHLO name and its parents."""
    helo = ctx.session.helo_name
    if not helo:
        return DUNNO
    queries = hostname_queries(helo, parent_matches_subdomains=AccessTables.of(
        ctx.config).parent_matches)
    return _verdict(ctx, queries, helo, HELO_CLASS, "helo")


def check_sender_access(ctx: CheckContext) -> Verdict:
    """check_sender_access type:table — MAIL FROM; the null sender as ``<>``."""
    if ctx.sender is None:
        return DUNNO
    if ctx.sender == "":
        tables = AccessTables.of(ctx.config)
        return _verdict(ctx, [(tables.null_key, False)], "", SENDER_CLASS, "sender")
    return _address_verdict(ctx, ctx.sender, SENDER_CLASS, "sender")


def check_recipient_access(ctx: CheckContext) -> Verdict:
    """check_recipient_access type:table — RCPT TO, wherever the list runs."""
    if ctx.recipient is None:
        return DUNNO
    verdict = _address_verdict(ctx, ctx.recipient, RECIPIENT_CLASS, "recipient")
    # A source-routed recipient is too suspicious for OK (SUSPICIOUS() in smtpd_check.c).
    if isinstance(verdict, Permit) and not ctx.config["allow_untrusted_routing"]:
        if AddressClasses.of(ctx.config).resolve(ctx.recipient).routed:
            return DUNNO
    return verdict


def _address_verdict(ctx: CheckContext, address: str, reply_class: str, stage: str) -> Verdict:
    tables = AccessTables.of(ctx.config)
    queries = address_queries(_qualified(address, ctx.config), delimiters=tables.delimiters,
                              parent_matches_subdomains=tables.parent_matches)
    return _verdict(ctx, queries, address, reply_class, stage)


def _qualified(address: str, config) -> str:
    """A bare local part as trivial-rewrite sees it: ``user@$myorigin``."""
    localpart, domain = split_address(address)
    if domain or not config["append_at_myorigin"]:
        return address
    return f"{localpart}@{config['myorigin']}"


def register(registry) -> None:
    """Entry point of the built-in access-map plugin."""
    for func in (check_client_access, check_reverse_client_hostname_access, check_helo_access,
                 check_sender_access, check_recipient_access):
        registry.add(func.__name__, func, nargs=1, setup=open_access_table)

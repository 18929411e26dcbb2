"""Relay control: the checks that keep relayd from being an open relay.

``permit_mynetworks``, ``permit_sasl_authenticated``,
``reject_unauth_destination``, ``defer_unauth_destination``,
``permit_auth_destination`` and the generic ``permit`` / ``reject`` /
``defer``, as postconf(5) defines them. A destination is "authorised" when
the recipient, resolved as the next hop would route it
(:func:`relayd.addresses.route`), ends in $mydestination or
$relay_domains and carries no sender-specified routing.
"""
from __future__ import annotations

import logging

from relayd.addresses import normalize_domain, route
from relayd.config import ConfigError
from relayd.config.derived import PerConfig
from relayd.networks import NetworkList
from relayd.pipeline.context import CheckContext
from relayd.pipeline.verdicts import DUNNO, OK, Defer, Reject
from relayd.smtp.replies import (R450_ACCESS_DENIED, R454_RELAY_DEFERRED,
                                 R554_ACCESS_DENIED, R554_RELAY_DENIED)
from relayd.tables.base import open_table_or_surrogate
from relayd.tables.maps import Maps

log = logging.getLogger("relayd.smtpd")

# What Postfix names in "<name>: Class rejected: ..." for each stage.
_STAGE_CLASS = {
    "client": "Client host",
    "helo": "Helo command",
    "sender": "Sender address",
    "relay": "Recipient address",
    "recipient": "Recipient address",
    "data": "Data command",
    "end_of_data": "End-of-data",
}


class Destinations(PerConfig):
    """The domains this relay accepts mail for, from one configuration."""

    def __init__(self, config):
        self.config = config
        local, self.local_tables = _domain_list(config, "mydestination")
        self.local = set(local)
        relay, self.relay_tables = _domain_list(config, "relay_domains")
        self.relay = {d for d in relay if not d.startswith(".")}
        # ".example.com" matches subdomains only; a plain "example.com" matches its
        # subdomains too when parent_domain_matches_subdomains names relay_domains.
        self.relay_parents = {d[1:] for d in relay if d.startswith(".")}
        self.relay_subdomains = "relay_domains" in config["parent_domain_matches_subdomains"]
        if self.relay_subdomains:
            self.relay_parents |= self.relay
        self.myorigin = normalize_domain(config["myorigin"])
        self.mynetworks = NetworkList(config["mynetworks"])

    def is_local(self, domain: str) -> bool:
        return domain in self.local or _listed(self.local_tables, domain)

    def is_relay(self, domain: str) -> bool:
        """Listed in relay_domains: by name, or as a key of one of its tables
        (a table's parent-domain key is "parent" with subdomain matching on,
        ".parent" otherwise, as Postfix's domain lists look them up)."""
        if domain in self.relay or _listed(self.relay_tables, domain):
            return True
        parent = domain
        while "." in parent:
            parent = parent.split(".", 1)[1]
            if parent in self.relay_parents:
                return True
            if self.relay_tables and _listed(
                    self.relay_tables, parent if self.relay_subdomains else "." + parent):
                return True
        return False

    def authorised(self, recipient: str) -> bool:
        """May any client send to ``recipient``? (permit_auth_destination)

        Yes when it resolves, without sender-specified routing, to a local
        domain (mydestination or this host's address literals), a virtual
        alias domain or a relay domain: trivial-rewrite's address classes.
        """
        from relayd.rewrite.domains import DEFAULT, AddressClasses
        r = route(recipient, self.is_local)
        if r.routed:
            return False
        return AddressClasses.of(self.config).classify(r.domain or self.myorigin) != DEFAULT


def _domain_list(config, name: str) -> tuple[list[str], Maps]:
    """A domain-list parameter: its domain names and its ``type:table`` items."""
    names, tables = [], []
    for word in config[name]:
        if word.startswith("/"):
            raise ConfigError(f"/file/name patterns are not supported yet (use a table, e.g. "
                              f"texthash:{word}): {word}", parameter=name)
        if ":" in word and not word.startswith("["):
            tables.append(open_table_or_surrogate(word, config, log=log))
        else:
            names.append(normalize_domain(word))
    return names, Maps(name, tables, checked=False)


def _listed(tables: Maps, domain: str) -> bool:
    """Is ``domain`` a key of one of ``tables``? (TemporaryLookupError passes: 4xx)"""
    return tables.find(domain) is not None


def _who(ctx: CheckContext) -> str:
    if ctx.stage == "client":
        return f"{ctx.session.client_name}[{ctx.session.client_addr}]"
    if ctx.stage == "helo":
        return ctx.session.helo_name
    if ctx.stage == "sender":
        return ctx.sender or ""
    return ctx.recipient or ""


def permit(ctx: CheckContext):
    """permit: accept."""
    return OK


def reject(ctx: CheckContext):
    """reject: 554 5.7.1 <name>: Class rejected: Access denied."""
    return Reject(R554_ACCESS_DENIED.format(_who(ctx), _STAGE_CLASS[ctx.stage]))


def defer(ctx: CheckContext):
    """defer: 450 4.7.1 <name>: Class rejected: Access denied."""
    return Defer(R450_ACCESS_DENIED.format(_who(ctx), _STAGE_CLASS[ctx.stage]))


def permit_mynetworks(ctx: CheckContext):
    """permit_mynetworks: the client address matches $mynetworks."""
    return OK if ctx.session.client_addr in Destinations.of(ctx.config).mynetworks else DUNNO


def permit_sasl_authenticated(ctx: CheckContext):
    """permit_sasl_authenticated: the client logged in with SMTP AUTH."""
    return OK if ctx.session.sasl_username else DUNNO


def permit_auth_destination(ctx: CheckContext):
    """permit_auth_destination: the recipient is ours or a relay domain's."""
    return OK if Destinations.of(ctx.config).authorised(ctx.recipient or "") else DUNNO


def reject_unauth_destination(ctx: CheckContext):
    """reject_unauth_destination: 554 5.7.1 <rcpt>: Relay access denied."""
    if ctx.recipient is None or Destinations.of(ctx.config).authorised(ctx.recipient):
        return DUNNO
    return Reject(R554_RELAY_DENIED.format(ctx.recipient))


def defer_unauth_destination(ctx: CheckContext):
    """defer_unauth_destination: as reject_unauth_destination, but 454 4.7.1."""
    if ctx.recipient is None or Destinations.of(ctx.config).authorised(ctx.recipient):
        return DUNNO
    return Defer(R454_RELAY_DEFERRED.format(ctx.recipient))


def register(registry) -> None:
    """Entry point of the built-in relay-control plugin."""
    for func in (permit, reject, defer, permit_mynetworks, permit_sasl_authenticated,
                 permit_auth_destination, reject_unauth_destination, defer_unauth_destination):
        registry.add(func.__name__, func)

"""Address classes: which domains this host is the final destination for.

Postfix's trivial-rewrite sorts every recipient domain into one class
(src/trivial-rewrite/resolve.c), in this order: local ($mydestination,
$inet_interfaces, $proxy_interfaces), virtual alias ($virtual_alias_domains),
relay ($relay_domains), default (everything else). The class picks the
transport and the table a recipient is validated against.
"""
from __future__ import annotations

import ipaddress

from relayd.addresses import normalize_domain
from relayd.checks.relay import Destinations
from relayd.config.derived import PerConfig
from relayd.rewrite.tables import open_tables, table_specs

LOCAL, VIRTUAL_ALIAS, RELAY, DEFAULT = "local", "virtual_alias", "relay", "default"

# inet_interfaces words that name no address.
_INTERFACE_WORDS = {"all": (), "loopback-only": ("127.0.0.1", "::1")}


def _literal(address: str) -> str:
    """An interface address as a domain literal: ``[192.0.2.1]`` / ``[ipv6:::1]``."""
    address = address.strip("[]")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return normalize_domain(address)
    return f"[ipv6:{ip.compressed}]" if ip.version == 6 else f"[{ip}]"


class LocalDomains(PerConfig):
    """$mydestination plus the ``[address]`` literals of this host's interfaces."""

    def __init__(self, config):
        destinations = Destinations.of(config)
        self.names, self.tables = set(destinations.local), destinations.local_tables
        for parameter in ("inet_interfaces", "proxy_interfaces"):
            for word in config[parameter]:
                for address in _INTERFACE_WORDS.get(word, (word,)):
                    self.names.add(_literal(address))

    def __contains__(self, domain: str) -> bool:
        domain = normalize_domain(domain)
        return domain in self.names or any(t.lookup(domain) is not None for t in self.tables)


class DomainList:
    """A Postfix domain list (virtual_alias_domains): names, ``!name``
    exclusions and ``type:table`` items, first match wins; a table item
    matches when the domain is a key of the table (the value is ignored)."""

    def __init__(self, config, parameter: str):
        self.items: list[tuple[bool, str, object]] = []
        for word in table_specs(config, parameter):
            negate = word.startswith("!")
            word = word.lstrip("!")
            if ":" in word and not word.startswith("["):
                [table] = open_tables(config, parameter, [word])
                self.items.append((negate, "", table))
            else:
                self.items.append((negate, normalize_domain(word), None))

    def __contains__(self, domain: str) -> bool:
        domain = normalize_domain(domain)
        for negate, name, table in self.items:
            if (table.lookup(domain) is not None) if table is not None else name == domain:
                return not negate
        return False


class AddressClasses(PerConfig):
    """Sorts domains into local / virtual alias / relay / default."""

    def __init__(self, config):
        self.local = LocalDomains.of(config)
        self.virtual_alias = DomainList(config, "virtual_alias_domains")
        self.relay = Destinations.of(config)

    def classify(self, domain: str) -> str:
        """LOCAL, VIRTUAL_ALIAS, RELAY or DEFAULT for ``domain``."""
        domain = normalize_domain(domain)
        if domain in self.local:
            return LOCAL
        if domain in self.virtual_alias:
            return VIRTUAL_ALIAS
        if self.relay.is_relay(domain):
            return RELAY
        return DEFAULT

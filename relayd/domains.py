"""Address classes: which domains this host is the final destination or a relay for.

Postfix's trivial-rewrite sorts every recipient domain into one class
(ADDRESS_CLASS_README; src/trivial-rewrite/resolve.c), first match wins:

===============  =========================================================
local            $mydestination, or an address literal of this host
                 ($inet_interfaces, $proxy_interfaces)
virtual alias    $virtual_alias_domains
virtual mailbox  $virtual_mailbox_domains
relay            $relay_domains
default          everything else
===============  =========================================================

The class picks the transport (relayd.delivery.route) and the table a
recipient is validated against (relayd.checks.recipients); any class but
default is an authorised destination (reject_unauth_destination).

Every domain-list parameter is read by :class:`DomainList` (Postfix's
match_list) and inet_interfaces / proxy_interfaces by :class:`Interfaces`,
which the listeners and local_header_rewrite_clients use too. A table that
cannot answer raises :class:`~relayd.tables.base.TemporaryLookupError`
(the caller answers 4xx).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import logging

from relayd.addresses import Route, normalize_domain, route
from relayd.config import ConfigError
from relayd.config.derived import PerConfig
from relayd.tables.base import Table, open_table_or_surrogate

log = logging.getLogger("relayd.trivial-rewrite")

LOCAL, VIRTUAL_ALIAS, VIRTUAL_MAILBOX, RELAY, DEFAULT = (
    "local", "virtual_alias", "virtual_mailbox", "relay", "default")

_LOOPBACK = ("127.0.0.1", "::1")
_WILDCARD = ("0.0.0.0", "::")
# How many domains' answers are remembered (lists without tables only), per configuration.
_KNOWN_LIMIT = 4096


class DomainList:
    """A parameter whose value lists domains, read as Postfix's match_list
    reads it (src/util/match_list.c, match_ops.c).

    Items: a domain name; ``/file/name``, whose lines (``#`` lines skipped)
    are more items; ``type:table``, which matches when the domain (lower
    case) is a key, whatever the value. ``!`` before an item inverts it
    (before a file: each of its items). The first item that matches decides;
    no match means no.

    ``hostnames=False`` (Postfix's string_list: mydestination,
    virtual_alias_domains, virtual_mailbox_domains): a name or key matches
    itself only. ``hostnames=True`` (domain_list: relay_domains): subdomains
    match too. With the parameter named in parent_domain_matches_subdomains
    ``example.com`` matches ``sub.example.com`` and a table is asked for
    ``example.com``; without, only ``.example.com`` does, and a table is
    asked for ``.example.com``. Pattern tables (regexp, pcre...) are asked
    for the whole domain only.
    """

    def __init__(self, config, parameter: str, *, hostnames: bool = False,
                 words: list[str] | None = None):
        # words: the list itself, when it is not a main.cf parameter (a mysql: file's domain).
        self.parameter = parameter
        self.hostnames = hostnames
        self.parents = hostnames and parameter in config["parent_domain_matches_subdomains"]
        self.items: list[tuple[bool, str, Table | None]] = []
        self._add(config, config[parameter] if words is None else words, True)
        # Names and files only: the answer for a domain never changes (a table's may).
        self.static = all(table is None for _, _, table in self.items)

    def __contains__(self, domain: str) -> bool:
        domain = normalize_domain(domain)
        for match, name, table in self.items:
            if self._table_has(table, domain) if table is not None else self._names(name, domain):
                return match
        return False

    def _names(self, pattern: str, domain: str) -> bool:
        if pattern == domain:
            return True
        if not self.hostnames or len(domain) <= len(pattern) or not domain.endswith(pattern):
            return False
        # match_hostname(): "pattern" is a parent only at a label boundary.
        return domain[-len(pattern) - 1] == "." if self.parents else pattern.startswith(".")

    def _table_has(self, table: Table, domain: str) -> bool:
        if table.lookup(domain) is not None:
            return True
        if not (self.hostnames and table.fixed):
            return False
        dot = domain.find(".", 1)
        while dot > 0:
            if table.lookup(domain[dot + 1:] if self.parents else domain[dot:]) is not None:
                return True
            dot = domain.find(".", dot + 1)
        return False

    def _add(self, config, words, match: bool) -> None:
        for word in words:
            if word.startswith("#"):
                log.warning("%s: comment at end of line is not supported: %s", self.parameter, word)
                return
            item = word.lstrip("!")
            item_match = match if (len(word) - len(item)) % 2 == 0 else not match
            if not item:
                raise ConfigError("no pattern after '!'", parameter=self.parameter)
            if item.startswith("/"):
                self._add_file(config, item, item_match)
            elif ":" in item and not item.startswith("["):
                self.items.append((item_match, "", self._open(config, item)))
            else:
                self.items.append((item_match, normalize_domain(item), None))

    def _add_file(self, config, path: str, match: bool) -> None:
        try:
            with open(path, encoding="utf-8") as file:
                lines = file.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"open file {path}: {exc}", parameter=self.parameter) from None
        for line in lines:
            if not line.startswith("#"):
                self._add(config, line.replace(",", " ").split(), match)

    def _open(self, config, spec: str) -> Table:
        # relayd has no proxymap(8): each process opens its tables itself.
        while spec.startswith("proxy:"):
            spec = spec[len("proxy:"):]
        try:
            return open_table_or_surrogate(spec, config, log=log)
        except ConfigError as exc:
            if exc.parameter:
                raise
            raise ConfigError(exc.message, file=exc.file, line=exc.line,
                              parameter=self.parameter) from None


class Interfaces:
    """inet_interfaces (or proxy_interfaces) read once: ``all``,
    ``loopback-only``, IP addresses (``[]`` optional) and host names."""

    def __init__(self, config, parameter: str = "inet_interfaces"):
        self.parameter = parameter
        self.words = tuple(w if w in ("all", "loopback-only") else w.strip("[]")
                           for w in config[parameter])

    def listen_addresses(self, protocols) -> list[str]:
        """What the listeners bind, in order: ``all`` is the wildcard address
        of each protocol, ``loopback-only`` 127.0.0.1 and ::1; addresses of a
        protocol not in ``protocols`` (inet_protocols) are left out; host
        names are kept, for the listener to resolve."""
        protocols = {"ipv4", "ipv6"} if "all" in protocols else set(protocols)
        out = []
        for word in self.words:
            for address in {"all": _WILDCARD, "loopback-only": _LOOPBACK}.get(word, (word,)):
                version = _ip_version(address)
                if version is None or f"ipv{version}" in protocols:
                    out.append(address)
        return out

    def own_addresses(self) -> list[str]:
        """The IP addresses this host is known to receive mail on. relayd
        cannot list the host's interfaces, so ``all`` gives the loopback
        addresses; host names are left out (see :meth:`hostnames`)."""
        out = []
        for word in self.words:
            if word in ("all", "loopback-only"):
                out.extend(_LOOPBACK)
            elif _ip_version(word) is not None:
                out.append(str(ipaddress.ip_address(word)))
        return out

    def hostnames(self) -> list[str]:
        """The items that name a host rather than an address."""
        return [w for w in self.words
                if w not in ("all", "loopback-only") and _ip_version(w) is None]


def _ip_version(text: str) -> int | None:
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return None


class LocalDomains(PerConfig):
    """The local class: $mydestination, and the address literals
    (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``) of $inet_interfaces and
    $proxy_interfaces (Postfix's resolve_local())."""

    def __init__(self, config):
        self.names = DomainList(config, "mydestination")
        self.addresses = {ipaddress.ip_address(a)
                          for parameter in ("inet_interfaces", "proxy_interfaces")
                          for a in Interfaces(config, parameter).own_addresses()}
        # Every address is resolved against the local class: without tables
        # the answer is remembered.
        self._known: dict[str, bool] | None = {} if self.names.static else None

    def __contains__(self, domain: str) -> bool:
        return _remembered(self._known, domain, self._contains)

    def _contains(self, domain: str) -> bool:
        domain = normalize_domain(domain)
        if domain in self.names:
            return True
        if not (domain.startswith("[") and domain.endswith("]")):
            return False
        literal = domain[1:-1]
        try:
            address = ipaddress.ip_address(literal[5:] if literal.startswith("ipv6:") else literal)
        except ValueError:
            return False
        return address in self.addresses


class AddressClasses(PerConfig):
    """Sorts domains into the address classes of one configuration."""

    def __init__(self, config):
        self.local = LocalDomains.of(config)
        self.virtual_alias = DomainList(config, "virtual_alias_domains")
        self.virtual_mailbox = DomainList(config, "virtual_mailbox_domains")
        self.relay = DomainList(config, "relay_domains", hostnames=True)
        self.myorigin = normalize_domain(config["myorigin"])
        # Each message's domains are classified at RCPT and again for delivery;
        # without tables the answer is remembered.
        self._known: dict[str, str] | None = {} if all(
            lst.static for lst in (self.local.names, self.virtual_alias, self.virtual_mailbox,
                                   self.relay)) else None

    def classify(self, domain: str) -> str:
        """LOCAL, VIRTUAL_ALIAS, VIRTUAL_MAILBOX, RELAY or DEFAULT for ``domain``."""
        return _remembered(self._known, domain, self._classify)

    def _classify(self, domain: str) -> str:
        domain = normalize_domain(domain)
        if domain in self.local:
            return LOCAL
        if domain in self.virtual_alias:
            return VIRTUAL_ALIAS
        if domain in self.virtual_mailbox:
            return VIRTUAL_MAILBOX
        if domain in self.relay:
            return RELAY
        return DEFAULT

    def resolve(self, address: str) -> Route:
        """``address`` resolved as trivial-rewrite resolves it
        (:func:`relayd.addresses.route` with this host's local domains); a
        bare local part gets $myorigin as its domain."""
        resolved = route(address, self.local.__contains__)
        if resolved.domain:
            return resolved
        return dataclasses.replace(resolved, domain=self.myorigin)

    def authorised(self, address: str) -> bool:
        """May any client send to ``address``? (permit_auth_destination)

        Yes when it resolves, without sender-specified routing, to a domain
        of any class but default."""
        resolved = self.resolve(address)
        return not resolved.routed and self.classify(resolved.domain) != DEFAULT


def _remembered(known: dict | None, domain: str, answer_of):
    """``answer_of(domain)``, remembered in ``known`` (None: never remembered)."""
    if known is None:
        return answer_of(domain)
    answer = known.get(domain)
    if answer is None:
        answer = answer_of(domain)
        if len(known) >= _KNOWN_LIMIT:   # bounded: clients choose the domains
            known.clear()
        known[domain] = answer
    return answer


__all__ = ["AddressClasses", "DEFAULT", "DomainList", "Interfaces", "LOCAL", "LocalDomains",
           "RELAY", "VIRTUAL_ALIAS", "VIRTUAL_MAILBOX"]

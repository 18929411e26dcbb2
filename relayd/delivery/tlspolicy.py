"""The TLS policy for one next hop, as Postfix's smtp_tls_policy.c makes it.

The level is smtp_tls_security_level unless smtp_tls_policy_maps has an
entry for the next hop: the next hop exactly as written (``[host]:port``,
``[host]``, ``host:port`` are looked up once), and for a plain domain its
parent domains as ``.parent``. An entry is a level and attributes::

    [mail.example.com]:587   secure match=mail.example.com protocols=>=TLSv1.3
    example.net              verify match=hostname:.example.net servername=hostname
    old.example.org          may ciphers=medium exclude=CHACHA20

What an entry leaves out comes from main.cf: protocols (smtp_tls_protocols
at level may, smtp_tls_mandatory_protocols above), cipher grade and
exclusions, SNI (smtp_tls_servername) and the names to match
(smtp_tls_verify_cert_match, smtp_tls_secure_cert_match). A malformed entry
or a table that cannot answer makes :class:`PolicyProblem`: the mail waits
("client TLS configuration problem"), it never goes out with less TLS.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from relayd.config import ConfigError
from relayd.delivery.route import Destination
from relayd.paramtypes import split_list
from relayd.rewrite.tables import open_tables
from relayd.tables.base import TemporaryLookupError
from relayd.tables.maps import Maps
from relayd.tls.context import protocol_range

__all__ = ["TLSPolicy", "TLSPolicies", "PolicyProblem", "LEVELS"]

log = logging.getLogger("relayd.smtp")

LEVELS = ("none", "may", "encrypt", "verify", "secure")
_ONCE = ("protocols", "ciphers", "exclude", "servername")  # attributes allowed once
_POLICY_CACHE_LIMIT = 1000


class PolicyProblem(Exception):
    """No usable policy for a next hop (Postfix: "client TLS configuration problem")."""


@dataclass(frozen=True)
class TLSPolicy:
    """The TLS of one next hop: its ``level``, the protocol list and cipher
    grade for its context, the cipher ``exclude`` list, the ``match`` names
    (verify, secure: "hostname", "nexthop", "dot-nexthop" or names) and the
    ``servername`` (SNI: "", "hostname", "nexthop" or a name)."""

    level: str
    protocols: str = ""
    grade: str = ""
    exclude: tuple[str, ...] = ()
    match: tuple[str, ...] = ()
    servername: str = ""

    @property
    def required(self) -> bool:
        """True when the mail must not go in the clear (encrypt and above)."""
        return self.level in ("encrypt", "verify", "secure")

    @property
    def must_match(self) -> bool:
        """True when the server certificate must verify and match (verify, secure)."""
        return self.level in ("verify", "secure")

    def names(self, destination: Destination) -> tuple[str, ...]:
        """The match names with hostname/nexthop/dot-nexthop filled in."""
        words = {"hostname": destination.host, "nexthop": destination.host,
                 "dot-nexthop": "." + destination.host}
        return tuple(words.get(name.lower(), name) for name in self.match)

    def server_name(self, destination: Destination) -> str | None:
        """The SNI name to send, None for none (never an IP address)."""
        name = {"hostname": destination.host, "nexthop": destination.host}.get(
            self.servername, self.servername)
        if not name:
            return None
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name
        return None


class TLSPolicies:
    """smtp_tls_security_level and smtp_tls_policy_maps, with each next
    hop's policy kept once found (as Postfix's policy cache)."""

    def __init__(self, config) -> None:
        self._config = config
        self.level = config["smtp_tls_security_level"] or "none"
        tables = open_tables(config, "smtp_tls_policy_maps")
        self.maps = Maps("smtp_tls_policy_maps", tables) if tables else None
        self._cache: dict[str, TLSPolicy] = {}

    def policy(self, destination: Destination) -> TLSPolicy:
        """The policy for ``destination``; PolicyProblem when there is none usable."""
        policy = self._cache.get(destination.nexthop)
        if policy is None:
            try:
                policy = self._complete(self._lookup(destination.nexthop))
            except PolicyProblem:
                log.warning("TLS policy lookup for %s/%s: client TLS configuration problem",
                            destination.nexthop, destination.host)
                raise
            if len(self._cache) >= _POLICY_CACHE_LIMIT:
                self._cache.clear()
            self._cache[destination.nexthop] = policy
        return policy

    def _lookup(self, nexthop: str) -> TLSPolicy | None:
        if self.maps is None:
            return None
        keys = [nexthop]
        if not any(c in nexthop for c in "[]:"):  # a domain: then .parent domains
            keys += [nexthop[i:] for i in range(1, len(nexthop)) if nexthop[i] == "."]
        for key in keys:
            where = f'smtp_tls_policy_maps, next-hop destination "{key}"'
            try:
                value = self.maps.find(key, partial=key != nexthop)
            except TemporaryLookupError:
                log.warning("%s: policy table lookup error", where)
                raise PolicyProblem(where) from None
            if value is not None:
                return _parse(value, where)
        return None

    def _complete(self, found: TLSPolicy | None) -> TLSPolicy:
        """Fill in what the table entry left out from main.cf (an entry's
        exclude= replaces the main.cf exclusions, as in Postfix)."""
        config = self._config
        entry = found or TLSPolicy(self.level)
        level = entry.level
        if level == "none":
            return TLSPolicy("none")
        may = level == "may"
        exclude = entry.exclude or (*config["smtp_tls_exclude_ciphers"],
                                    *(() if may else config["smtp_tls_mandatory_exclude_ciphers"]))
        match = entry.match
        if entry.must_match and not match:
            match = tuple(config["smtp_tls_verify_cert_match" if level == "verify"
                                 else "smtp_tls_secure_cert_match"])
        protocols = entry.protocols or config["smtp_tls_protocols" if may
                                              else "smtp_tls_mandatory_protocols"]
        grade = entry.grade or config["smtp_tls_ciphers" if may else "smtp_tls_mandatory_ciphers"]
        return TLSPolicy(level, protocols, grade, tuple(exclude), match,
                         entry.servername or config["smtp_tls_servername"])


def _parse(value: str, where: str) -> TLSPolicy:
    """One smtp_tls_policy_maps entry: a level, then name=value attributes."""
    items = split_list(value)
    if not items:
        log.warning("%s: invalid empty policy", where)
        raise PolicyProblem(where)
    level = items[0].lower()
    if level not in LEVELS:
        log.warning('%s: invalid security level "%s"', where, items[0])
        raise PolicyProblem(where)
    if level == "none":
        for item in items[1:]:
            log.warning('%s: ignoring attribute "%s" with TLS disabled', where, item)
        return TLSPolicy("none")
    attrs: dict[str, str] = {}
    match: list[str] = []
    for item in items[1:]:
        name, sep, val = item.partition("=")
        name, val = name.strip().lower(), val.strip()
        if not sep or not name:
            log.warning('%s: malformed attribute/value pair "%s"', where, item)
            raise PolicyProblem(where)
        if name == "match":
            if not val or level not in ("verify", "secure"):
                log.warning('%s: attribute "%s" invalid at security level "%s"', where, name, level)
                raise PolicyProblem(where)
            match += [m for m in val.split(":") if m]
        elif name in _ONCE:
            if name in attrs:
                log.warning('%s: attribute "%s" is specified multiple times', where, name)
                raise PolicyProblem(where)
            attrs[name] = val
        else:
            log.warning('%s: invalid attribute name: "%s"', where, name)
            raise PolicyProblem(where)
    if attrs.get("ciphers", "medium") not in ("high", "medium"):
        log.warning('%s: invalid cipher grade "%s"', where, attrs["ciphers"])
        raise PolicyProblem(where)
    if "protocols" in attrs:
        try:
            protocol_range(attrs["protocols"], "smtp_tls_policy_maps")
        except ConfigError as exc:
            log.warning('%s: invalid "protocols" value: %s', where, exc.message)
            raise PolicyProblem(where) from None
    return TLSPolicy(level, attrs.get("protocols", ""), attrs.get("ciphers", ""),
                     tuple(split_list(attrs.get("exclude", ""))), tuple(match),
                     attrs.get("servername", ""))

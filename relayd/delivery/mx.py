"""The servers of a next hop: Postfix's smtp_addr.c, over relayd's resolver.

:meth:`ServerFinder.servers` turns a :class:`~relayd.delivery.route.Destination`
into the list of servers to try, in order (RFC 5321 section 5.1):

- ``[192.0.2.1]:port`` or ``[2001:db8::1]``: that address, no DNS;
- ``[host]:port``: the host's addresses, from the system's resolver
  (getaddrinfo: /etc/hosts, then DNS), tried in turn by the connection;
- ``domain:port`` or ``domain``: its MX records (relayd.dns, the resolver
  of relayd_dns_servers), most preferred first, hosts of equal preference
  shuffled, each exchange's A/AAAA records (as inet_protocols allows) in
  that order. Without MX records the domain's own addresses are the
  implicit MX (preference 0). A null MX (RFC 7505) bounces:
  ``5.1.0 Domain D does not accept mail (nullMX)``.

When this host is one of the MX hosts (one of the addresses is its own:
$inet_interfaces, $proxy_interfaces; checked only for port 25, as Postfix
does), the list is cut before the first host as preferred as this one, and
no fallback relay is used: nothing left means ``5.4.6 mail for D loops back
to myself`` (this host is the best MX) or ``4.4.4 unable to find primary
relay for D`` (better MX hosts have no address).

A DNS failure never bounces: a server that does not answer (or answers
SERVFAIL) defers the mail with 4.4.3 "Host or domain name not found. Name
service error for name=D type=MX: Host not found, try again". Postfix bounces
(5.4.3) when a server refuses the question (REFUSED, FORMERR: "Non-recoverable
error"); relayd defers then too (4.4.3), since a broken resolver is not a
verdict on the domain. A name that does not exist, or that has no address,
bounces (5.4.4), unless an MX host of better preference has an address.
"""
from __future__ import annotations

import ipaddress
import logging
import random
from dataclasses import dataclass
from functools import lru_cache

from relayd.domains import Interfaces
from relayd.queue.outcome import BOUNCED, DEFERRED, Outcome

__all__ = ["Server", "Servers", "ServerFinder", "numeric_address"]

log = logging.getLogger("relayd.smtp")

_SMTP_PORT = 25
_TRY_AGAIN = "Host not found, try again"
_NO_RECOVERY = "Non-recoverable error"
_NOT_FOUND = {"nxdomain": "Host not found", "nodata": "Host found but no data record of requested type"}


@dataclass(frozen=True, slots=True)
class Server:
    """One server to try: ``host`` (its name, for HOST[IP]), ``address``
    (None: let the connection resolve ``host`` with the system's resolver),
    ``port`` and the MX ``pref`` it came with."""
    host: str
    address: str | None
    port: int
    pref: int = 0


@dataclass(frozen=True, slots=True)
class Servers:
    """The servers of a next hop, or why there are none (``failure``, every
    recipient's outcome when no server is left). ``final``: no fallback relay
    after this next hop (this host is an MX host of the destination)."""
    servers: tuple[Server, ...]
    failure: Outcome | None = None
    final: bool = False


@lru_cache(maxsize=4096)
def numeric_address(host: str) -> str | None:
    """``host`` as an IP address in normal form, or None for a name."""
    try:
        return str(ipaddress.ip_address(host[5:] if host.lower().startswith("ipv6:") else host))
    except ValueError:
        return None


class ServerFinder:
    """Finds the servers of next hops for one configuration."""

    def __init__(self, config) -> None:
        self._config = config
        protocols = set(config["inet_protocols"])
        self._types = tuple(t for t, p in (("A", "ipv4"), ("AAAA", "ipv6"))
                            if "all" in protocols or p in protocols)
        self._own = {ipaddress.ip_address(a) for parameter in ("inet_interfaces", "proxy_interfaces")
                     for a in Interfaces(config, parameter).own_addresses()}
        self._resolver = None
        if config["relayd_dns_servers"]:   # a bad server list stops startup, not a delivery
            self._lookup_resolver()

    def servers(self, destination) -> Servers:
        """The servers of ``destination`` (a Destination) to try, in order."""
        address = numeric_address(destination.host)
        if address is not None:
            return Servers((Server(destination.host, address, destination.port),))
        if not destination.mx_lookup:
            return Servers((Server(destination.host, None, destination.port),))
        return self._mx(destination.host.rstrip(".").lower(), destination.port)

    # --- MX ------------------------------------------------------------------------------
    def _mx(self, domain: str, port: int) -> Servers:
        from relayd.dns import NXDOMAIN, NODATA, DnsError, DnsTemporaryError
        loop_detect = port == _SMTP_PORT
        try:
            answer = self._lookup(domain, "MX")
        except DnsError as exc:
            text = _TRY_AGAIN if isinstance(exc, DnsTemporaryError) else _NO_RECOVERY
            return Servers((), _deferred("4.4.3", _name_error(domain, "MX", text)))
        if answer.status in (NXDOMAIN, NODATA):   # RFC 5321 5.1: the implicit MX
            servers, failure = self._addresses(domain, 0, port)
            if loop_detect and any(self._is_me(s.address) for s in servers):
                return Servers((), Outcome(BOUNCED, "5.4.6",
                                           f"mail for {domain} loops back to myself"), True)
            return Servers(tuple(_shuffled(servers)), None if servers else failure)
        if any(not exchange for _, exchange in answer.records):
            return Servers((), Outcome(BOUNCED, "5.1.0",
                                       f"Domain {domain} does not accept mail (nullMX)"))
        return self._exchanges(domain, answer.records, port, loop_detect)

    def _exchanges(self, domain: str, records, port: int, loop_detect: bool) -> Servers:
        """The addresses of the MX hosts ``records`` ((pref, name) pairs), best first."""
        mx = sorted(_shuffled(list(records)), key=lambda record: record[0])
        servers: list[Server] = []
        failure = None
        for pref, exchange in mx:
            found, why = self._addresses(exchange, pref, port)
            servers += _shuffled(found)
            if why is not None and (failure is None or failure.status == BOUNCED):
                failure = why   # a temporary failure outweighs a permanent one
        if not servers:
            log.warning("no MX host for %s has a valid address record", domain)
            return Servers((), failure)
        servers.sort(key=lambda server: server.pref)
        if loop_detect:
            me = next((s for s in servers if self._is_me(s.address)), None)
            if me is not None:
                best_found = servers[0].pref
                servers = [s for s in servers if s.pref < me.pref]
                if servers:
                    return Servers(tuple(servers), final=True)
                if mx[0][0] != best_found:   # better MX hosts, none with an address
                    return Servers((), _deferred("4.4.4", f"unable to find primary relay for "
                                                          f"{domain}"), True)
                return Servers((), Outcome(BOUNCED, "5.4.6",
                                           f"mail for {domain} loops back to myself"), True)
        return Servers(tuple(servers))

    def _addresses(self, host: str, pref: int, port: int) -> tuple[list[Server], Outcome | None]:
        """The A/AAAA records of ``host`` as servers, and why there are none
        of some type (None when all answered)."""
        from relayd.dns import DnsError, DnsTemporaryError, FOUND
        address = numeric_address(host)
        if address is not None:
            return [Server(host, address, port, pref)], None
        servers, failure = [], None
        for rdtype in self._types:
            try:
                answer = self._lookup(host, rdtype)
            except DnsError as exc:   # a temporary failure outweighs "not found"
                text = _TRY_AGAIN if isinstance(exc, DnsTemporaryError) else _NO_RECOVERY
                if failure is None or failure.status == BOUNCED:
                    failure = _deferred("4.4.3", _name_error(host, rdtype, text))
                continue
            if answer.status == FOUND:
                servers += [Server(host, a, port, pref) for a in answer.records]
            elif failure is None:
                failure = Outcome(BOUNCED, "5.4.4", _name_error(host, rdtype, _NOT_FOUND[answer.status]))
        return servers, (None if servers else failure)

    def _lookup(self, name: str, rdtype: str):
        return (self._resolver or self._lookup_resolver()).lookup(name, rdtype)

    def _lookup_resolver(self):
        """The process's resolver (relayd.dns, imported only when DNS is used)."""
        from relayd.dns import resolver
        self._resolver = resolver(self._config)
        return self._resolver

    def _is_me(self, address: str | None) -> bool:
        return address is not None and ipaddress.ip_address(address) in self._own


def _shuffled(items: list) -> list:
    """``items`` in random order (equal-preference MX hosts, RFC 5321 5.1);
    the callers sort by preference afterwards, which keeps the shuffle within one."""
    items = list(items)
    random.shuffle(items)
    return items


def _deferred(dsn: str, reason: str) -> Outcome:
    return Outcome(DEFERRED, dsn, reason)


def _name_error(name: str, rdtype: str, text: str) -> str:
    return f"Host or domain name not found. Name service error for name={name} type={rdtype}: {text}"

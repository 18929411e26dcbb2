"""The client's name, looked up as Postfix's smtpd_peer.c looks it up.

1. address -> name (the *reverse* name): the hosts file
   (:mod:`relayd.hostsfile`, as the C library's "files" source), else the
   PTR record in DNS. A numeric or malformed name counts as none.
2. name -> addresses (forward confirmation): the hosts file, else the
   name's A records (AAAA for an IPv6 client) in DNS. Only when they
   include the client's address is the name the client's *verified* name;
   otherwise the client is "unknown", and the reverse name is kept
   (check_reverse_client_hostname_access, reject_unknown_reverse_client_hostname).

Each step's outcome is recorded as smtpd_peer.c records it (the ``NAME_*``
codes of :mod:`relayd.pipeline.context`): no PTR record is permanent; a DNS
failure or timeout is temporary (reject_unknown_client_hostname then says
450 whatever unknown_client_reject_code is: never a wrong 5xx); a name
whose addresses do not include the client's is forged, with smtpd_peer.c's
warning ``hostname X does not resolve to address Y[: reason]``.

The lookup starts when the connection is accepted (:meth:`PeerNames.start`)
and the session waits for it (:meth:`PeerNames.wait`) before the first
thing that needs the name: the "connect from" line, the connect-stage
restrictions and the greeting, where Postfix has it too. An answer from the
hosts file is there at once, with no greenlet and no query (the benchmark's
127.0.0.1 is "localhost"); a DNS lookup runs in a greenlet of its own, so
that a wait cut short by relayd_peername_lookup_timeout leaves the queries
to finish (or time out) on their own instead of killing a query other
sessions may share. A slow resolver delays only the sessions that wait
for it.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

import gevent

from relayd.checks.syntax import valid_hostname
from relayd.config.derived import PerConfig
from relayd.dns import NXDOMAIN, DnsError, resolver, reverse_name
from relayd.hostsfile import HostsFile
from relayd.pipeline.context import NAME_FORGED, NAME_OK, NAME_PERM, NAME_TEMP
from relayd.smtp.text import printable
from relayd.tables.search import is_host_address

log = logging.getLogger("relayd.smtpd")

# gai_strerror() of the getaddrinfo() failures smtpd_peer.c logs (glibc's texts).
_NO_NAME = "Name or service not known"               # EAI_NONAME: NXDOMAIN
_NO_ADDRESS = "No address associated with hostname"  # EAI_NODATA
_TRY_AGAIN = "Temporary failure in name resolution"  # EAI_AGAIN


@dataclass(frozen=True, slots=True)
class PeerName:
    """What is known of a client's name: the verified ``name`` and the
    ``reverse_name`` (each "unknown" when there is none) and their statuses."""

    name: str
    name_status: int
    reverse_name: str
    reverse_status: int


#: How many clients' hosts-file names are remembered (a hosts file may list many).
_FROM_HOSTS_LIMIT = 1024

#: A client not looked up (smtpd_peername_lookup = no), or not on IP.
UNNAMED = PeerName("unknown", NAME_PERM, "unknown", NAME_PERM)


class PeerNames(PerConfig):
    """The client-name lookups of one configuration: smtpd_peername_lookup,
    relayd_hosts_file, relayd_peername_lookup_timeout and the DNS resolver."""

    def __init__(self, config):
        self.enabled = config["smtpd_peername_lookup"]
        path = config["relayd_hosts_file"]
        self.hosts = HostsFile(path) if path else None
        self.timeout = config["relayd_peername_lookup_timeout"]
        # Built now, so that a bad relayd_dns_servers stops startup; it asks nothing yet.
        self.resolver = resolver(config) if self.enabled else None
        # Names the hosts file alone verified, by address, with the file's version.
        self._from_hosts: dict[str, tuple[int, PeerName]] = {}

    def start(self, address: str) -> "PeerName | _Lookup":
        """Start looking ``address`` up: the name when it is known at once,
        else a lookup under way to hand to :meth:`wait`."""
        if not self.enabled or not address:
            return UNNAMED
        version = 6 if ":" in address else 4   # a socket's peer: an IP address
        hosts = self.hosts
        reverse = None
        if hosts is not None:
            known = self._from_hosts.get(address)
            if known is not None and known[0] == hosts.version():
                return known[1]
            reverse = hosts.name_of(address)
        if reverse is not None:
            if not _usable(reverse):
                return UNNAMED
            confirmed = hosts.addresses_of(reverse, version)
            if confirmed:   # all from the hosts file: no greenlet, no query
                named = _verified(address, reverse, NAME_OK, confirmed)
                if named.name_status == NAME_OK:   # (the others log a warning each time)
                    if len(self._from_hosts) >= _FROM_HOSTS_LIMIT:
                        self._from_hosts.clear()
                    self._from_hosts[address] = (hosts.version(), named)
                return named
        lookup = _Lookup(self, address, version)
        lookup.greenlet = gevent.spawn(lookup.run, reverse)
        return lookup

    def wait(self, started: "PeerName | _Lookup") -> PeerName:
        """The client's name once :meth:`start`'s lookup is over, or what is
        known when relayd_peername_lookup_timeout has passed (the rest
        temporarily unknown)."""
        if isinstance(started, PeerName):
            return started
        started.greenlet.join(self.timeout)
        if started.result is None:
            log.warning("%s: client name lookup unfinished after %ss", started.address,
                        self.timeout)
            return PeerName("unknown", NAME_TEMP, started.reverse or "unknown",
                            NAME_OK if started.reverse else NAME_TEMP)
        return started.result


class _Lookup:
    """One client's lookup in progress (the greenlet's side of it)."""

    __slots__ = ("names", "address", "version", "greenlet", "reverse", "result")

    def __init__(self, names: PeerNames, address: str, version: int):
        self.names = names
        self.address = address
        self.version = version
        self.greenlet = None
        self.reverse: str | None = None     # the PTR name once found
        self.result: PeerName | None = None

    def run(self, reverse: str | None) -> None:
        """Both steps (``reverse``: the hosts file's name for the address, if any)."""
        try:
            if reverse is None:
                reverse, status = self._ptr()
                if reverse is None:
                    self.result = PeerName("unknown", status, "unknown", status)
                    return
            self.reverse = reverse
            self.result = _verified(self.address, reverse, *self._forward(reverse))
        except Exception:   # a bug must not leave the session waiting: unknown, temporarily
            log.exception("%s: client name lookup failed", self.address)
            self.result = PeerName("unknown", NAME_TEMP, self.reverse or "unknown",
                                   NAME_OK if self.reverse else NAME_TEMP)

    def _ptr(self) -> tuple[str | None, int]:
        """The PTR name and NAME_OK, or None and why there is none."""
        try:
            answer = self.names.resolver.lookup(reverse_name(self.address), "PTR")
        except DnsError:
            return None, NAME_TEMP
        if not answer:
            return None, NAME_PERM
        name = answer.records[0]    # getnameinfo() takes the first one
        return (name, NAME_OK) if _usable(name) else (None, NAME_PERM)

    def _forward(self, name: str) -> tuple[int, list[str]]:
        """The addresses of ``name`` in the client's family: the hosts file's,
        else DNS's; NAME_OK or why there are none (logged as smtpd_peer.c does)."""
        hosts = self.names.hosts
        addresses = hosts.addresses_of(name, self.version) if hosts is not None else []
        if addresses:
            return NAME_OK, addresses
        try:
            answer = self.names.resolver.lookup(name, "AAAA" if self.version == 6 else "A")
        except DnsError:
            return self._unresolved(name, NAME_TEMP, _TRY_AGAIN)
        if not answer:
            return self._unresolved(name, NAME_FORGED,
                                    _NO_NAME if answer.status == NXDOMAIN else _NO_ADDRESS)
        return NAME_OK, list(answer.records)

    def _unresolved(self, name: str, status: int, reason: str) -> tuple[int, list[str]]:
        log.warning("hostname %s does not resolve to address %s: %s", name, self.address, reason)
        return status, []


def _verified(address: str, reverse: str, status: int, addresses) -> PeerName:
    """The outcome of the forward step: the name when ``addresses`` (found
    with ``status``) include the client's ``address``, else unknown."""
    if status == NAME_OK:
        if address in addresses or _normal(address) in {_normal(a) for a in addresses}:
            return PeerName(reverse, NAME_OK, reverse, NAME_OK)
        log.warning("hostname %s does not resolve to address %s", reverse, address)
        status = NAME_FORGED
    return PeerName("unknown", status, reverse, NAME_OK)


def _usable(name: str) -> bool:
    """Whether an address's name may name a client: not numeric (a PTR or
    hosts line could otherwise pass off an address as a name), a valid host
    name (myaddrinfo.c sockaddr_to_hostname); a warning when not."""
    if valid_hostname(name):   # never numeric: valid_hostname() refuses all-digit names
        return True
    if is_host_address(name):
        log.warning("numeric hostname: %s", printable(name))
    else:
        log.warning("valid_hostname: invalid hostname: %.100s", printable(name))
    return False


def _normal(address: str) -> str:
    return str(ipaddress.ip_address(address)) if ":" in address else address

"""The DNS resolver: cooperative queries, a small cache, parsed answers.

Every DNS question relayd asks (DNSBL checks, client names, unknown
domains, MX delivery) goes through the one :class:`Resolver` of the
process, obtained with :func:`resolver`::

    from relayd.dns import resolver, DnsError, NXDOMAIN

    answer = resolver(config).lookup("example.test", "MX")
    answer.status    # FOUND, NXDOMAIN or NODATA
    answer.records   # ((10, "mx1.example.test"), (20, "mx2.example.test"))

What a lookup gives
-------------------
:meth:`Resolver.lookup` returns an :class:`Answer` for every definitive
reply: ``FOUND`` (records of that type, parsed), ``NXDOMAIN`` (no such name)
or ``NODATA`` (the name exists, with no record of that type); ``records`` is
empty unless FOUND. Records are parsed into plain values:

=====  ==============================================================
A      "192.0.2.1"
AAAA   "2001:db8::1" (compressed, lowercase)
MX     (preference, exchange); a null MX (RFC 7505) is (0, "")
TXT    the record's strings joined ("" between them), as text
PTR    a name; NS and CNAME likewise
other  the record in presentation form
=====  ==============================================================

Names (the answer's ``name``, ``canonical``, MX exchanges, PTR/NS/CNAME
targets) are lowercase without the trailing dot. ``canonical`` is the name
after the CNAMEs of the answer were followed (``name`` when there were none).

Everything else raises :class:`DnsError` (never an empty answer):

* :class:`DnsTemporaryError`: no server answered in time, a network error,
  SERVFAIL — ask again later;
* :class:`DnsPermanentError`: a server refused the question or could not
  parse it (REFUSED, FORMERR, NOTIMP, other codes), or the reply is
  malformed, or the name cannot be a DNS name. Postfix's resolver calls
  these NO_RECOVERY (DNS_FAIL) and its checks treat them as they treat a
  temporary error: not an answer. Callers that mirror Postfix catch
  :class:`DnsError` for both.

How questions are asked
-----------------------
Messages are built and parsed with dnspython; they are sent on gevent
sockets, so a query waits without blocking the loop (relayd does not
monkey-patch, and dnspython's own ``dns.query`` would wait in ``selectors``).
Each question goes out over UDP with EDNS0 (1232-byte payload, the DNS flag
day 2020 size) to each server in turn, ``attempts`` rounds, each try waiting
at most ``timeout`` seconds; a truncated reply (TC) is asked again over TCP
(same deadline per try). A SERVFAIL, REFUSED or other error code from one
server moves on to the next, as the C library's resolver does. The names
asked are absolute: resolv.conf's ``search`` and ``ndots`` are not applied.

Servers and timeouts come from main.cf's DNS block (relayd/params.py):
``relayd_dns_servers`` (``ADDRESS:PORT`` items, ``[::1]:5353`` for IPv6;
empty: /etc/resolv.conf's ``nameserver`` lines, else 127.0.0.1),
``relayd_dns_timeout`` and ``relayd_dns_attempts`` (0: resolv.conf's
``options timeout:N attempts:N``, else 5 s and 2, the C library's
defaults), ``relayd_dns_cache_size``.

The cache
---------
Definitive answers are kept for their TTL (positive: the smallest TTL of
the CNAME chain and the answer; negative, NXDOMAIN and NODATA: the SOA's
TTL capped by its MINIMUM field, RFC 2308), at most :data:`MAX_CACHE_TTL`
seconds, in a bounded least-recently-used table of
``relayd_dns_cache_size`` entries per process (0 turns it off). Failures
are not cached. Concurrent lookups of one question share one query.

Helpers: :func:`reverse_name` (the PTR name of an address) and
:func:`dnsbl_name` (the query name of an address under a DNSBL zone:
reversed octets, or nibbles for IPv6).

Using it
--------
Call :func:`resolver` in a check's ``setup`` (or wherever the feature is
set up at startup): it raises ConfigError for a bad ``relayd_dns_servers``,
and nothing is read or asked until then, so a configuration without DNS
features costs nothing. ``lookup`` waits cooperatively (call it from a
greenlet), at most about ``timeout x attempts x servers`` seconds; the
:class:`Answer` is frozen and may be shared. Tests build their own
``Resolver([("127.0.0.1", port)], timeout=1, attempts=1)`` against the
test DNS server (tests/support/dnsserver.py).
"""
from __future__ import annotations

import ipaddress
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from gevent import socket
from gevent.event import AsyncResult

from relayd import chroot
from relayd.config import ConfigError
from relayd.config.derived import PerConfig
from relayd.metrics import METER

__all__ = ["FOUND", "NXDOMAIN", "NODATA", "Answer", "DnsError", "DnsTemporaryError",
           "DnsPermanentError", "Resolver", "resolver", "reverse_name", "dnsbl_name",
           "parse_servers"]

FOUND = "found"
NXDOMAIN = "nxdomain"
NODATA = "nodata"

#: The longest an answer stays cached, whatever its TTL (seconds).
MAX_CACHE_TTL = 3600
#: The EDNS0 UDP payload size announced (DNS flag day 2020).
UDP_PAYLOAD = 1232
#: The C library's defaults when resolv.conf sets none (resolv.h RES_TIMEOUT, RES_DFLRETRY),
#: and its upper bounds (RES_MAXRETRANS, RES_MAXRETRY).
DEFAULT_TIMEOUT, DEFAULT_ATTEMPTS = 5.0, 2
_MAX_TIMEOUT, _MAX_ATTEMPTS = 30.0, 5

_TEMPORARY_RCODES = (dns.rcode.SERVFAIL,)


class DnsError(Exception):
    """No definitive answer: see :class:`DnsTemporaryError` and
    :class:`DnsPermanentError`. ``str()`` says why, for log lines."""


class DnsTemporaryError(DnsError):
    """Timeout, network error or SERVFAIL: the answer may come later."""


class DnsPermanentError(DnsError):
    """REFUSED, FORMERR, NOTIMP or another error code, a malformed reply, or a
    name that cannot be asked. Postfix treats these as "no answer" too."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A definitive reply to one question (see the module doc)."""

    name: str
    rdtype: str
    status: str
    records: tuple = ()
    ttl: int = 0
    canonical: str = ""

    def __bool__(self) -> bool:
        return self.status == FOUND


@dataclass(frozen=True, slots=True)
class _Settings:
    servers: tuple[tuple[str, int], ...]
    timeout: float
    attempts: int
    cache_size: int


class Resolver:
    """A stub resolver asking ``servers`` ((address, port) pairs) in turn.

    ``timeout`` is the wait per try (seconds), ``attempts`` the rounds over
    all servers, ``cache_size`` the most answers kept (0: no cache).
    """

    def __init__(self, servers, *, timeout: float = DEFAULT_TIMEOUT,
                 attempts: int = DEFAULT_ATTEMPTS, cache_size: int = 1000):
        if not servers:
            raise ValueError("a resolver needs at least one server")
        self.servers = tuple(servers)
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], tuple[float, Answer]] = OrderedDict()
        self._inflight: dict[tuple[str, str], AsyncResult] = {}

    def lookup(self, name: str, rdtype: str = "A") -> Answer:
        """The answer to ``name`` (absolute; a trailing dot is optional) and
        ``rdtype`` ("A", "MX"...): FOUND, NXDOMAIN or NODATA. Raises
        :class:`DnsError` when there is no definitive answer."""
        key = (name.rstrip(".").lower(), rdtype.upper())
        hit = self._cached(key)   # before any parsing: a hit costs a dict lookup
        if hit is not None:
            return hit
        try:
            qname = dns.name.from_text(key[0] + ".") if key[0].strip(".") else None
            qtype = dns.rdatatype.from_text(key[1])
        except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
            raise DnsPermanentError(f"{name}: invalid query: {exc}") from None
        if qname is None:
            raise DnsPermanentError(f"{name!r}: empty name")
        waiting = self._inflight.get(key)
        if waiting is not None:
            return waiting.get()
        result = self._inflight[key] = AsyncResult()
        started = time.monotonic()
        try:
            answer = self._resolve(qname, qtype)
        except BaseException as exc:
            _count(key[1], "error", started)
            # Those waiting on this query get its error, but not a Timeout or a
            # kill aimed at this greenlet.
            result.set_exception(exc if isinstance(exc, Exception) else
                                 DnsTemporaryError(f"{name}: query abandoned"))
            raise
        else:
            _count(key[1], answer.status.lower(), started)
            result.set(answer)
            self._store(key, answer)
            return answer
        finally:
            del self._inflight[key]

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    # -- cache ------------------------------------------------------------------------

    def _cached(self, key) -> Answer | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return entry[1]

    def _store(self, key, answer: Answer) -> None:
        if self.cache_size <= 0 or answer.ttl <= 0:
            return
        self._cache[key] = (time.monotonic() + min(answer.ttl, MAX_CACHE_TTL), answer)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # -- queries ----------------------------------------------------------------------

    def _resolve(self, qname: dns.name.Name, qtype: int) -> Answer:
        query = dns.message.make_query(qname, qtype, use_edns=0, payload=UDP_PAYLOAD)
        errors: list[DnsError] = []
        for _ in range(self.attempts):
            for server in self.servers:
                try:
                    response = self._exchange(query, server)
                except DnsError as exc:
                    errors.append(exc)
                    continue
                rcode = response.rcode()
                if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    return _answer(qname, qtype, response)
                cls = DnsTemporaryError if rcode in _TEMPORARY_RCODES else DnsPermanentError
                errors.append(cls(f"{_text(qname)}: {dns.rcode.to_text(rcode)} from "
                                  f"{_where(server)}"))
        temporary = [e for e in errors if isinstance(e, DnsTemporaryError)]
        raise (temporary or errors)[-1]

    def _exchange(self, query: dns.message.Message, server) -> dns.message.Message:
        """One try with ``server``: UDP, then TCP if the reply is truncated."""
        deadline = time.monotonic() + self.timeout
        try:
            response = _udp(query, server, deadline)
            if response.flags & dns.flags.TC:
                response = _tcp(query, server, deadline)
        except (socket.timeout, TimeoutError):
            raise DnsTemporaryError(f"{_text(query.question[0].name)}: timeout after "
                                    f"{self.timeout:g}s from {_where(server)}") from None
        except OSError as exc:
            raise DnsTemporaryError(f"{_text(query.question[0].name)}: {_where(server)}: "
                                    f"{exc.strerror or exc}") from None
        except dns.exception.DNSException as exc:
            raise DnsPermanentError(f"{_text(query.question[0].name)}: malformed reply from "
                                    f"{_where(server)}: {exc}") from None
        return response


def _count(rdtype: str, result: str, started: float) -> None:
    METER.inc("dns_queries", rdtype, result)
    METER.observe("dns_query_duration_seconds", rdtype, value=time.monotonic() - started)


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out")
    return left


def _udp(query: dns.message.Message, server, deadline: float) -> dns.message.Message:
    """Send ``query`` over UDP; the first datagram that answers it (others are
    ignored: spoofing attempts, late replies to earlier tries)."""
    with socket.socket(_family(server[0]), socket.SOCK_DGRAM) as sock:
        sock.connect(server)
        sock.send(query.to_wire())
        while True:
            sock.settimeout(_remaining(deadline))
            wire = sock.recv(65535)
            try:
                response = dns.message.from_wire(wire, ignore_trailing=True,
                                                 raise_on_truncation=True)
            except dns.message.Truncated as truncated:
                response = truncated.message()   # the caller asks again over TCP
            except dns.exception.DNSException:
                continue
            if query.is_response(response):
                return response


def _tcp(query: dns.message.Message, server, deadline: float) -> dns.message.Message:
    """Ask ``query`` over TCP (RFC 7766: a two-byte length before each message)."""
    with socket.socket(_family(server[0]), socket.SOCK_STREAM) as sock:
        sock.settimeout(_remaining(deadline))
        sock.connect(server)
        wire = query.to_wire()
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        (length,) = struct.unpack("!H", _read_exactly(sock, 2, deadline))
        response = dns.message.from_wire(_read_exactly(sock, length, deadline))
        if not query.is_response(response):
            raise dns.exception.FormError("the TCP reply does not answer the query")
        return response


def _read_exactly(sock, count: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < count:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionResetError("connection closed by the server")
        data += chunk
    return bytes(data)


def _answer(qname: dns.name.Name, qtype: int, response: dns.message.Message) -> Answer:
    """The Answer in a NOERROR or NXDOMAIN ``response``."""
    try:
        chain = response.resolve_chaining()
    except dns.exception.DNSException as exc:   # a CNAME loop, an answer with NXDOMAIN
        raise DnsPermanentError(f"{_text(qname)}: malformed reply: {exc}") from None
    name, canonical = _text(qname), _text(chain.canonical_name)
    rdtype = dns.rdatatype.to_text(qtype)
    if chain.answer is not None:
        records = tuple(_parse(rdata) for rdata in chain.answer)
        return Answer(name, rdtype, FOUND, records, chain.minimum_ttl, canonical)
    status = NXDOMAIN if response.rcode() == dns.rcode.NXDOMAIN else NODATA
    return Answer(name, rdtype, status, (), chain.minimum_ttl, canonical)


def _parse(rdata):
    """One record as the plain value the module doc lists."""
    rdtype = rdata.rdtype
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return rdata.address.lower()
    if rdtype == dns.rdatatype.MX:
        return rdata.preference, _text(rdata.exchange)
    if rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if rdtype in (dns.rdatatype.PTR, dns.rdatatype.NS, dns.rdatatype.CNAME):
        return _text(rdata.target)
    return rdata.to_text()


def _text(name: dns.name.Name) -> str:
    """A name lowercase, without the trailing dot; the root is ""."""
    if name == dns.name.root:
        return ""
    return name.to_text(omit_final_dot=True).lower()


def _where(server) -> str:
    address, port = server
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# -- addresses as names ---------------------------------------------------------------


def _reversed_labels(address: str) -> str:
    ip = ipaddress.ip_address(address.strip("[]"))
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return ".".join(reversed(str(ip).split(".")))
    return ".".join(reversed(ip.exploded.replace(":", "")))


def reverse_name(address: str) -> str:
    """The PTR name of an IPv4 or IPv6 address: ``4.3.2.1.in-addr.arpa``, or
    32 nibbles and ``ip6.arpa``. ValueError if ``address`` is not an address."""
    labels = _reversed_labels(address)
    return labels + (".ip6.arpa" if labels.count(".") > 3 else ".in-addr.arpa")


def dnsbl_name(address: str, zone: str) -> str:
    """The name a DNSBL/DNSWL ``zone`` is asked about ``address``: the octets
    reversed (``4.3.2.1.zone``), or the 32 nibbles reversed for IPv6 (RFC
    5782). An IPv4-mapped IPv6 address is asked as IPv4."""
    return f"{_reversed_labels(address)}.{zone.strip('.').lower()}"


# -- configuration --------------------------------------------------------------------


def parse_servers(items) -> tuple[tuple[str, int], ...]:
    """``relayd_dns_servers`` items (``ADDRESS[:PORT]``, ``[IPV6][:PORT]``) as
    (address, port) pairs; ValueError naming a bad item."""
    servers = []
    for item in items:
        try:
            address, port = _split_server(item)
            ipaddress.ip_address(address)
            number = int(port) if port else 53
            if not 0 < number < 65536:
                raise ValueError
        except ValueError:
            raise ValueError(f"bad DNS server {item!r} (expected ADDRESS:PORT or "
                             f"[IPV6]:PORT)") from None
        servers.append((address, number))
    return tuple(servers)


def _split_server(item: str) -> tuple[str, str]:
    if item.startswith("["):
        address, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError
        return address, rest[1:]
    if item.count(":") == 1:
        address, _, port = item.partition(":")
        return address, port
    return item, ""


def read_resolv_conf(path: str = "/etc/resolv.conf") -> tuple[tuple, float | None, int | None]:
    """The servers, ``options timeout:`` and ``attempts:`` of resolv.conf(5)
    (None when it sets none); 127.0.0.1 when it names no server."""
    servers, timeout, attempts = [], None, None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read(65536).splitlines()
    except OSError:
        lines = []
    for line in lines:
        words = line.split()
        if len(words) < 2 or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(servers) < 3:   # MAXNS
            try:
                servers.append((str(ipaddress.ip_address(words[1])), 53))
            except ValueError:
                continue
        elif words[0] == "options":
            for option in words[1:]:
                name, _, value = option.partition(":")
                if name in ("timeout", "attempts") and value.isdigit():
                    if name == "timeout":
                        timeout = float(value)
                    else:
                        attempts = int(value)
    return tuple(servers) or (("127.0.0.1", 53),), timeout, attempts


_resolv_conf_before_chroot: list[tuple] = []   # a jailed worker cannot read /etc/resolv.conf


def _remember_resolv_conf() -> None:
    _resolv_conf_before_chroot[:] = [read_resolv_conf()]


chroot.before_entering(_remember_resolv_conf)


def _settings(config) -> _Settings:
    try:
        servers = parse_servers(config["relayd_dns_servers"])
    except ValueError as exc:
        raise ConfigError(str(exc), parameter="relayd_dns_servers") from None
    timeout, attempts = config["relayd_dns_timeout"], config["relayd_dns_attempts"]
    if not servers or not timeout or not attempts:
        system, sys_timeout, sys_attempts = (_resolv_conf_before_chroot[0]
                                             if _resolv_conf_before_chroot else read_resolv_conf())
        servers = servers or system
        timeout = timeout or sys_timeout or DEFAULT_TIMEOUT
        attempts = attempts or sys_attempts or DEFAULT_ATTEMPTS
    return _Settings(servers, min(timeout, _MAX_TIMEOUT), min(attempts, _MAX_ATTEMPTS),
                     config["relayd_dns_cache_size"])


_process_resolver: list[Resolver] = []   # the one resolver of this process, once built


class _Configured(PerConfig):
    """The process's resolver for one configuration; a reloaded configuration
    with the same DNS settings keeps the same resolver (and its cache)."""

    def __init__(self, config):
        settings = _settings(config)
        current = _process_resolver[0] if _process_resolver else None
        if current is None or _settings_of(current) != settings:
            current = Resolver(settings.servers, timeout=settings.timeout,
                               attempts=settings.attempts, cache_size=settings.cache_size)
            _process_resolver[:] = [current]
        self.resolver = current


def _settings_of(r: Resolver) -> _Settings:
    return _Settings(r.servers, r.timeout, r.attempts, r.cache_size)


def resolver(config) -> Resolver:
    """The process's :class:`Resolver` for ``config`` (built on first use;
    nothing is read or asked before). ConfigError for a bad
    ``relayd_dns_servers``: call it from a check's setup so that the mistake
    stops startup."""
    return _Configured.of(config).resolver


"""A real authoritative DNS server for the tests, and a DNS "black hole".

:class:`DnsServer` runs Knot DNS (Debian's ``knot`` package: knotd, knotc)
as an unprivileged process on 127.0.0.1:<free port>, from a configuration
and zone files it writes in a private directory. The session-scoped
``dns_server`` fixture (tests/conftest.py) starts one for the whole run::

    zone = dns_server.add_zone(["2.0.0.127 A 127.0.0.2",
                                '2.0.0.127 TXT "listed: see https://rbl.test/"'])
    # zone == "z1.test" (a fresh origin per call unless one is given)
    dns_server.set_records(zone, [...])    # new contents; returns once served
    main_cf = f"relayd_dns_servers = {dns_server.spec}"   # 127.0.0.1:PORT

Records are zone-file lines relative to the origin (``@`` is the origin;
a TTL may follow the owner name, else ``ttl=`` of the call applies, 60 s
by default; the SOA's negative-caching TTL is ``ttl`` too). Each call
returns only when the server answers the zone's new SOA serial, so a test
never races the reload. Every origin must be under ``.test`` (RFC 2606): no
test name can leak to the Internet.

What the server answers, for the resolver tests: records, NXDOMAIN, NODATA
(authoritative, with the SOA for negative caching); REFUSED for a name in
no zone it serves; SERVFAIL for a zone whose file does not load
(:meth:`DnsServer.add_broken_zone`); over UDP, an answer larger than the
query's EDNS payload is truncated (TC), so a large TXT record makes a
resolver fall back to TCP.

Why Knot: it starts in about half a second as an ordinary user with its run
directory, database and control socket in a directory of its own; knotc
talks to it over that UNIX socket with no key to set up, and
``zone-reload``/``reload`` apply changed zone files and configuration at
once (a zone added or changed is served within about 50 ms). NSD's nsd-control needs TLS keys made first (nsd-control-setup) and
compiles zones into a database; BIND's named starts slower and needs an
rndc key; Unbound's local-data is a resolver's override, not an
authoritative zone (no real NODATA/NXDOMAIN with an SOA, no SERVFAIL for a
broken zone).

:class:`BlackHole` is a real UDP and TCP socket pair on one port that
reads every query and never answers: a DNS server that does not answer,
for timeout tests (the fault cannot be produced with a real server short
of stopping it, which would refuse instead of time out).
"""
from __future__ import annotations

import errno
import itertools
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from tests.support.relayd_proc import free_port

CONF = """\
server:
    rundir: "{dir}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{dir}/db"
control:
    listen: "{dir}/knot.sock"
template:
  - id: default
    storage: "{dir}/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
{zones}"""

ZONE = """\
$ORIGIN {origin}.
$TTL {ttl}
@ SOA ns.{origin}. hostmaster.{origin}. {serial} 3600 600 86400 {ttl}
@ NS ns.{origin}.
ns A 127.0.0.1
{records}
"""


def knot_binaries() -> tuple[str, str] | None:
    """(knotd, knotc) paths, or None when the knot package is not installed."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    knotd, knotc = shutil.which("knotd", path=path), shutil.which("knotc", path=path)
    return (knotd, knotc) if knotd and knotc else None


class _Loopback:
    """A server on 127.0.0.1:``port``."""

    port: int

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def spec(self) -> str:
        """The server as relayd_dns_servers writes it."""
        return f"127.0.0.1:{self.port}"


class DnsServer(_Loopback):
    """Knot DNS in ``directory``; see the module doc."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        (self.directory / "zones").mkdir(parents=True, exist_ok=True)
        (self.directory / "db").mkdir(exist_ok=True)
        self.port = free_port()
        self.conf = self.directory / "knot.conf"
        self.zones: dict[str, int] = {}   # origin -> serial
        self._names = itertools.count(1)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "DnsServer":
        self._write_zone("ready.test", [], 60)
        self._write_conf()
        knotd, _ = knot_binaries()
        log = open(self.directory / "knotd.log", "ab")
        self.proc = subprocess.Popen([knotd, "-c", str(self.conf)], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_serial("ready.test", timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log(self) -> str:
        return (self.directory / "knotd.log").read_text(errors="replace")

    # -- zones ------------------------------------------------------------------------

    def add_zone(self, records, origin: str | None = None, ttl: int = 60) -> str:
        """Serve a new zone (``origin``, or a fresh ``zN.test``) with ``records``;
        its origin once the server answers for it."""
        origin = (origin or f"z{next(self._names)}.test").rstrip(".").lower()
        # Test zones live under .test, and reverse zones only for loopback and
        # documentation (2001:db8::/32) addresses: nothing a real resolver serves.
        assert origin.endswith((".test", "127.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa")), \
            "test zones live under .test, 127.in-addr.arpa or 2001:db8::/32's ip6.arpa"
        assert origin not in self.zones, f"zone {origin} exists: use set_records"
        self._write_zone(origin, records, ttl)
        self._write_conf()
        self._knotc("reload")
        self._wait_serial(origin)
        return origin

    def set_records(self, origin: str, records, ttl: int = 60) -> None:
        """Replace the records of zone ``origin``; returns once they are served."""
        self._write_zone(origin, records, ttl)
        self._knotc("zone-reload", origin)
        self._wait_serial(origin)

    def add_broken_zone(self, origin: str | None = None) -> str:
        """A zone the server is configured for but cannot load: it answers
        SERVFAIL for every name in it."""
        origin = (origin or f"z{next(self._names)}.test").rstrip(".").lower()
        (self.directory / "zones" / f"{origin}.zone").write_text("this is not a zone file\n")
        self.zones[origin] = 0
        self._write_conf()
        self._knotc("reload")
        deadline = time.monotonic() + 10
        while self._soa(origin) != "SERVFAIL":
            assert time.monotonic() < deadline, f"{origin} does not fail:\n{self.log()}"
            time.sleep(0.02)
        return origin

    def _write_zone(self, origin: str, records, ttl: int) -> None:
        serial = self.zones.get(origin, 0) + 1
        self.zones[origin] = serial
        text = ZONE.format(origin=origin, ttl=ttl, serial=serial, records="\n".join(records))
        path = self.directory / "zones" / f"{origin}.zone"
        path.with_suffix(".tmp").write_text(text)
        path.with_suffix(".tmp").rename(path)

    def _write_conf(self) -> None:
        zones = "".join(f"  - domain: {origin}\n" for origin in self.zones)
        self.conf.write_text(CONF.format(dir=self.directory, port=self.port, zones=zones))

    def _knotc(self, *args: str) -> None:
        _, knotc = knot_binaries()
        done = subprocess.run([knotc, "-c", str(self.conf), "-s", str(self.directory / "knot.sock"),
                               "-t", "10", *args],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"knotc {' '.join(args)}: {done.stdout}{done.stderr}"

    def _soa(self, origin: str):
        """The zone's SOA serial as served, or the error code's name."""
        query = dns.message.make_query(origin + ".", "SOA")
        try:
            response = dns.query.udp(query, "127.0.0.1", timeout=0.5, port=self.port)
        except (dns.exception.Timeout, OSError):
            return None
        if response.rcode() != dns.rcode.NOERROR:
            return dns.rcode.to_text(response.rcode())
        return response.answer[0][0].serial if response.answer else None

    def _wait_serial(self, origin: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._soa(origin) != self.zones[origin]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"knotd does not serve {origin} serial "
                                   f"{self.zones[origin]}:\n{self.log()}")
            time.sleep(0.02)


class BlackHole(_Loopback):
    """A UDP and a TCP socket on one 127.0.0.1 port that read and never answer."""

    def __init__(self):
        # The port the kernel gives the UDP socket may be taken for TCP (another
        # test's connection uses it): then try the next one it gives.
        for _ in range(20):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError as exc:
                self.udp.close()
                self.tcp.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
        else:
            raise RuntimeError("no 127.0.0.1 port free for both UDP and TCP")
        self.tcp.listen(16)
        self.queries = 0   # datagrams and connections received
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._swallow, daemon=True)

    def start(self) -> "BlackHole":
        self._thread.start()
        return self

    def _swallow(self) -> None:
        conns: list[socket.socket] = []
        while not self._stop.is_set():
            readable, _, _ = select.select([self.udp, self.tcp, *conns], [], [], 0.1)
            for sock in readable:
                if sock is self.udp:
                    sock.recv(65535)
                    self.queries += 1
                elif sock is self.tcp:
                    conns.append(sock.accept()[0])
                    self.queries += 1
                elif not sock.recv(65535):
                    conns.remove(sock)
                    sock.close()
        for sock in conns:
            sock.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.udp.close()
        self.tcp.close()

"""SMTP client connections for the delivery agent, and their cache.

:class:`SmtpConnection` does the I/O around a sans-I/O
:class:`~relayd.smtp.client.ClientSession`. Every failure (timeout, lost
connection, protocol error) surfaces as :class:`Trouble`, worded the way
Postfix's smtp(8) words it ("lost connection with HOST[IP] while sending
RCPT TO", "conversation with HOST[IP] timed out while ..."), so the agent
turns it straight into a deferral.

Each protocol step (a reply, a write) is bounded by its own timeout, as
Postfix's smtp_*_timeout parameters bound each step. A connection keeps one
event-loop timer per distinct timeout and restarts it for every step: a
step costs no new timer (a ``gevent.Timeout`` would make one each time).

After STARTTLS, :meth:`SmtpConnection.start_tls` puts the TLS connection in
the socket's place; the TLS state (``tls``) and the AUTH user
(``sasl_user``) stay with the connection, so a cached connection is reused
with both, and only for the same SASL user (the cache key says which).

:class:`ConnectionCache` keeps idle connections per next hop, like Postfix's
scache: an idle connection is closed after ``idle_limit`` seconds
(smtp_connection_cache_time_limit, 2s) and not reused once it is older than
``reuse_time_limit`` (smtp_connection_reuse_time_limit, 300s).
"""
from __future__ import annotations

import dataclasses
import os
import select
import time

import gevent
from gevent import socket
from OpenSSL import SSL

from relayd.metrics import METER
from relayd.queue.outcome import DEFERRED, Outcome
from relayd.smtp.client import NEED_DATA, ClientProtocolError, ClientSession
from relayd.smtp.replies import Reply
from relayd.sockets import send_all

__all__ = ["Trouble", "SmtpConnection", "connect", "ConnectionCache"]


class Trouble(Exception):
    """A delivery attempt failed before a reply said so: ``dsn`` and
    ``reason`` go into the log and the queue; ``relay`` is HOST[IP]:PORT or
    "none" when no connection was made. :attr:`outcome` is what each
    recipient left without an outcome gets: a deferral."""

    def __init__(self, dsn: str, reason: str, relay: str = "none") -> None:
        super().__init__(reason)
        self.outcome = Outcome(DEFERRED, dsn, reason, relay)

    @classmethod
    def of(cls, outcome: Outcome) -> "Trouble":
        """The trouble of a session refused by a reply (EHLO/HELO): every
        recipient is deferred with that reply's outcome."""
        trouble = cls(outcome.dsn, outcome.reason, outcome.relay)
        trouble.outcome = dataclasses.replace(outcome, status=DEFERRED)
        return trouble

    @property
    def dsn(self) -> str:
        return self.outcome.dsn

    @property
    def reason(self) -> str:
        return self.outcome.reason


class _StepTimeout(Exception):
    pass


class SmtpConnection:
    """One open SMTP connection to ``host[ip]:port``; its content lines are
    limited to ``line_length_limit`` octets (smtp_line_length_limit)."""

    def __init__(self, sock: socket.socket, host: str, ip: str, port: int, *,
                 line_length_limit: int) -> None:
        self.sock = sock
        self.session = ClientSession(line_length_limit=line_length_limit)
        self.host = host                        # the remote MTA of a DSN
        self.name = f"{host}[{ip}]"            # Postfix's HOST[IP], for reasons
        self.relay = f"{self.name}:{port}"      # and HOST[IP]:PORT for relay=
        self.established = time.monotonic()
        self.uses = 0                           # transactions started on it
        self.idle_since = 0.0
        self.tls = None                         # PeerStatus once STARTTLS succeeded
        self.tls_key: tuple = ()                # its session's key in the TLS session cache
        self.sasl_user: str | None = None       # who AUTH made us
        self._timers: dict[float, object] = {}  # event-loop timers by seconds (see _Step)

    def start_tls(self, tls, status, key: tuple) -> None:
        """Talk through ``tls`` (a finished TLSConnection) from now on; the
        old EHLO keywords are forgotten (RFC 3207 section 4.2)."""
        self.sock, self.tls, self.tls_key = tls, status, key
        self.session.tls_started()

    def write(self, data: bytes, timeout: float, doing: str) -> None:
        """Send all of ``data`` within ``timeout`` seconds."""
        with _Step(self, timeout, doing) as step:
            step.wait()
            send_all(self.sock, data)

    def read_reply(self, timeout: float, doing: str) -> Reply:
        """The next reply, read within ``timeout`` seconds."""
        with _Step(self, timeout, doing) as step:
            while True:
                event = self.session.next_event()
                if event is not NEED_DATA:
                    return event
                step.wait()
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionResetError("connection closed by peer")
                self.session.receive_data(data)

    def command(self, line: str, timeout: float, doing: str) -> Reply:
        """Send one command and read its reply, each step within ``timeout``."""
        self.write(self.session.send_command(line), timeout, doing)
        return self.read_reply(timeout, doing)

    def timer(self, seconds: float):
        """This connection's stopped event-loop timer of ``seconds``."""
        timer = self._timers.get(seconds)
        if timer is None:
            timer = self._timers[seconds] = gevent.get_hub().loop.timer(seconds, priority=-1)
        return timer

    def looks_alive(self) -> bool:
        """False when the server closed an idle connection or sent
        something unasked (e.g. "421 timeout"): then it must not be reused."""
        try:
            # The standard library's select, not gevent's: with a zero timeout it never
            # blocks, and it costs one system call instead of a trip through the hub.
            readable, _, _ = select.select([self.sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        if readable and self.tls is not None:
            return _only_tls_records(self.sock)
        return not readable

    def close(self, polite: bool = True) -> None:
        """Close; when ``polite``, say QUIT first without waiting for the
        221 (the server acts on QUIT whether we read its reply or not)."""
        if polite:
            try:
                with gevent.Timeout(1, _StepTimeout):
                    self.sock.sendall(b"QUIT\r\n")
            except (OSError, SSL.Error, _StepTimeout):
                pass
        self.sock.close()
        for timer in self._timers.values():
            timer.close()
        self._timers.clear()


def _only_tls_records(tls) -> bool:
    """True when what an idle TLS connection has to read is no application
    data (e.g. TLS 1.3 session tickets): OpenSSL consumes such records."""
    try:
        tls.conn.recv(1)
    except SSL.WantReadError:
        return True
    except (SSL.Error, OSError):
        return False
    return False  # data or EOF: the server said something unasked


class _Step:
    """Bounds one protocol step and translates its failures into Trouble.

    The clock starts at the step's first wait (:meth:`wait`): a reply that was
    already read with the one before it (pipelining) costs no timer."""

    def __init__(self, conn: SmtpConnection, timeout: float, doing: str) -> None:
        self.conn, self.doing, self.seconds = conn, doing, timeout
        self.timer = None

    def __enter__(self) -> "_Step":
        return self

    def wait(self) -> None:
        """From now on the step is bounded (called before its first blocking call)."""
        if self.timer is None:
            self.timer = self.conn.timer(self.seconds)
            # As gevent.Timeout does: the loop's clock is brought up to date first.
            self.timer.start(gevent.getcurrent().throw, _StepTimeout, update=True)

    def __exit__(self, kind, exc, tb) -> bool:
        if self.timer is not None:
            self.timer.stop()
        if exc is None:
            return False
        if isinstance(exc, _StepTimeout):
            raise Trouble("4.4.2", f"conversation with {self.conn.name} timed out while {self.doing}",
                          self.conn.relay) from None
        if isinstance(exc, ClientProtocolError):
            raise Trouble("4.5.0", f"conversation with {self.conn.name} failed: {exc} while {self.doing}",
                          self.conn.relay) from None
        if isinstance(exc, (OSError, SSL.Error)):  # a TLS error loses the connection too
            raise Trouble("4.4.2", f"lost connection with {self.conn.name} while {self.doing}",
                          self.conn.relay) from None
        return False


def connect(host: str, port: int, timeout: float, *, line_length_limit: int,
            address: str | None = None) -> SmtpConnection:
    """Connect to ``address`` (an IP address already found for ``host``), or
    else to each address of ``host`` in turn (each within ``timeout``);
    Trouble with the last address's error if none answers.
    ``line_length_limit`` goes to the :class:`SmtpConnection`."""
    if address is not None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        infos = [(family, socket.SOCK_STREAM, 0, "", (address, port))]
    else:
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError:
            raise Trouble("4.4.3", f"Host or domain name not found. Name service error for "
                                   f"name={host} type=A: Host not found, try again") from None
    reason = f"connect to {host}: no address"
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            with gevent.Timeout(timeout, _StepTimeout):
                sock.connect(sockaddr)
        except _StepTimeout:
            reason = f"connect to {host}[{sockaddr[0]}]:{port}: Connection timed out"
            METER.inc("smtp_connection_timed_out")
        except OSError as exc:
            reason = f"connect to {host}[{sockaddr[0]}]:{port}: {_strerror(exc)}"
        else:
            if family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return SmtpConnection(sock, host, sockaddr[0], port, line_length_limit=line_length_limit)
        sock.close()
    raise Trouble("4.4.1", reason)


def _strerror(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


class ConnectionCache:
    """Idle SMTP connections by next hop, for reuse by the next message.

    One reaper greenlet, running while any connection is idle, closes those
    idle for ``idle_limit``: parking a connection after each message costs no
    timer and no greenlet of its own."""

    def __init__(self, idle_limit: float, reuse_time_limit: float) -> None:
        self.idle_limit, self.reuse_time_limit = idle_limit, reuse_time_limit
        self._idle: dict[str, list[SmtpConnection]] = {}
        self._reaper: gevent.Greenlet | None = None

    def take(self, nexthop: str) -> SmtpConnection | None:
        """An idle connection to ``nexthop`` that is still usable, or None."""
        idle = self._idle.get(nexthop, [])
        while idle:
            conn = idle.pop()
            if conn.looks_alive():
                return conn
            conn.close(polite=False)
        return None

    def idle(self) -> dict[str, int]:
        """Idle connections, by next hop."""
        return {nexthop: len(conns) for nexthop, conns in self._idle.items() if conns}

    def release(self, nexthop: str, conn: SmtpConnection) -> None:
        """Park a connection whose last transaction ended cleanly."""
        now = time.monotonic()
        if now - conn.established >= self.reuse_time_limit:
            conn.close()
            return
        conn.idle_since = now
        self._idle.setdefault(nexthop, []).append(conn)
        if self._reaper is None:
            self._reaper = gevent.spawn(self._reap)

    def close(self) -> None:
        """Close every idle connection (at stop)."""
        idle, self._idle = self._idle, {}
        if self._reaper is not None:
            self._reaper.kill(block=False)
            self._reaper = None
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _reap(self) -> None:
        """Close what has been idle for idle_limit, sleeping until the next one is due."""
        try:
            while True:
                oldest = min((conn.idle_since for conns in self._idle.values() for conn in conns),
                             default=None)
                if oldest is None:
                    return
                gevent.sleep(max(0.0, oldest + self.idle_limit - time.monotonic()))
                due = time.monotonic() - self.idle_limit
                for nexthop, conns in list(self._idle.items()):
                    expired = [conn for conn in conns if conn.idle_since <= due]
                    if expired:
                        self._idle[nexthop] = [conn for conn in conns if conn.idle_since > due]
                        for conn in expired:
                            conn.close()
        finally:
            if self._reaper is gevent.getcurrent():
                self._reaper = None

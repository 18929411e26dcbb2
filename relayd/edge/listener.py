"""Listeners: one gevent StreamServer per master.cf ``smtpd`` inet service.

:class:`SmtpdService` holds everything a session needs from its service's
configuration (main.cf with the service's ``-o`` overrides applied), read
once, so the per-command hot path touches plain attributes only.
"""
from __future__ import annotations

import errno
import logging
import socket

import gevent
from gevent.server import StreamServer

from relayd.anvil import TOO_MANY_SESSIONS, Anvil
from relayd.cleanup.message import Cleanup
from relayd.edge.dialogue import DialogueSettings
from relayd.edge.peername import PeerNames
from relayd.edge.session import SmtpdSession
from relayd.maillog import use_service_syslog_name
from relayd.networks import NetworkList
from relayd.pipeline.hooks import HookRegistry
from relayd.sockets import send_last
from relayd.tls.context import server_tls
from relayd.smtp.replies import R421_TOO_MANY_CLIENT_CONNECTIONS, R421_TOO_MANY_CONNECTIONS

log = logging.getLogger("relayd.smtpd")


class SmtpdService:
    """The settings and shared parts of one smtpd service."""

    def __init__(self, config, *, store, restrictions, sweeper, name: str = "smtp",
                 anvil: Anvil | None = None, hooks: HookRegistry | None = None):
        self.name = name
        self.config = config
        self.store = store
        self.restrictions = restrictions
        self.hooks = hooks if hooks is not None else HookRegistry()
        self.cleanup = Cleanup(config, store)
        self.sweeper = sweeper
        self.peer_names = PeerNames.of(config)
        self.myhostname = config["myhostname"]
        self.syslog_name = config["syslog_name"]   # master.cf's -o syslog_name, if any
        self.timeout = config["smtpd_timeout"]
        self.session_limit = config["smtpd_session_limit"]
        self.dialogue_settings = DialogueSettings.from_config(config, name)
        self.core_options = self.dialogue_settings.core_options(config)
        self.tls = server_tls(config)
        if self.tls is not None:
            # STARTTLS is offered on a plain port with a certificate; in wrapper
            # mode the session is in TLS from its first byte.
            self.core_options.update(starttls_available=not self.tls.wrapper,
                                     tls_active=self.tls.wrapper)
            if self.tls.level == "encrypt":   # smtpd.c: enforced TLS implies smtpd_tls_auth_only
                self.core_options["auth_tls_only"] = True
        self.sessions: set[SmtpdSession] = set()
        # smtpd_session_limit and smtpd_client_connection_count_limit, counted
        # across the workers; $mynetworks is exempt from the latter by default.
        self.anvil = anvil or Anvil(capacity=self.session_limit)
        self.client_limit = config["smtpd_client_connection_count_limit"]
        self.client_limit_exceptions = NetworkList(
            config["smtpd_client_event_limit_exceptions"],
            parameter="smtpd_client_event_limit_exceptions")
        self.auth_rate_limit = self.dialogue_settings.auth_rate_limit
        self.rate_time_unit = config["anvil_rate_time_unit"]

    def count_auth(self, client: str) -> int:
        """Count an AUTH command of ``client`` across the workers and connections
        (smtpd_client_auth_rate_limit): its AUTH commands in the current window,
        0 when there is no limit or the client is exempt."""
        if not self.auth_rate_limit or client in self.client_limit_exceptions:
            return 0
        return self.anvil.auth(self.name, client, self.rate_time_unit)

    def handle(self, sock, address) -> None:
        """Serve one accepted connection (runs in its own greenlet)."""
        use_service_syslog_name(self.syslog_name)
        client = address[0]
        counted = client if self.client_limit and client not in self.client_limit_exceptions \
            else None
        refused, count = self.anvil.connect(self.name, counted, self.session_limit,
                                            self.client_limit)
        if refused == TOO_MANY_SESSIONS:
            log.warning("too many connections: refusing %s", client)
            return _refuse(sock, R421_TOO_MANY_CONNECTIONS.format(self.myhostname))
        if refused:
            log.warning("Connection concurrency limit exceeded: %d from unknown[%s] for service %s",
                        count, client, self.name)
            return _refuse(sock, R421_TOO_MANY_CLIENT_CONNECTIONS.format(self.myhostname, client))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = SmtpdSession(self, sock, address)
            self.sessions.add(session)
            try:
                session.run()
            finally:
                self.sessions.discard(session)
        finally:
            self.anvil.disconnect(self.name, counted)


def _refuse(sock, reply) -> None:
    send_last(sock, reply.to_bytes())  # no session, no deadline: never wait for the client
    sock.close()


def bind(address: tuple[str, int], backlog: int = 1024) -> socket.socket:
    """A non-blocking listening socket on ``address`` (IPv6 sockets are v6-only)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(address)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def bind_all(addresses) -> dict:
    """Listening sockets by address. An IPv6 address this host cannot use
    (no IPv6 configured) is skipped with a warning, as Postfix does with
    inet_protocols = all on a host without IPv6; any other failure raises."""
    sockets = {}
    for address in addresses:
        try:
            sockets[address] = bind(address)
        except OSError as exc:
            if ":" not in address[0] or exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                raise
            log.warning("cannot listen on [%s]:%d: %s", address[0], address[1], exc.strerror)
    return sockets


class Listener:
    """A bound listening socket serving one :class:`SmtpdService`."""

    def __init__(self, sock, service: SmtpdService):
        self.service = service
        self.server = StreamServer(sock, service.handle)

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address[:2]

    def start(self) -> None:
        self.server.start()

    def close(self) -> None:
        """Stop accepting; sessions in progress go on."""
        self.server.close()

    def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for sessions to end, then cut the rest."""
        sessions = self.service.sessions
        with gevent.Timeout(timeout, False):
            while sessions:
                gevent.sleep(0.05)
        for session in list(sessions):
            session.greenlet.kill(block=False)

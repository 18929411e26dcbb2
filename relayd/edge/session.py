"""The session driver: one greenlet per SMTP connection.

It owns the socket and the clock and nothing else. It starts the lookup of
the client's name when the connection is accepted and waits for it before
the "connect from" line, the connect-stage restrictions and the greeting
(:mod:`relayd.edge.peername`); then the SMTP dialogue
(:class:`~relayd.edge.dialogue.SmtpDialogue`, no I/O) decides what every
event means and what is answered, cleanup and the queue make messages
durable. Replies to pipelined commands are collected and written in one
``sendall`` when the core runs out of input (RFC 2920). The idle/drip limit
is a deadline moved forward only when the client made progress (a whole
command or data line arrived), enforced by the
:class:`~relayd.edge.deadlines.DeadlineSweeper`; it covers writes too.
"""
from __future__ import annotations

import errno
import os

import gevent
from OpenSSL import SSL

from relayd.edge.deadlines import SessionTimeout
from relayd.edge.dialogue import CLOSE, NEED_DATA, START_TLS, SmtpDialogue
from relayd.edge.peername import PeerName
from relayd.pipeline.context import SessionView
from relayd.smtp.server import ProtocolError, ServerSession
from relayd.sockets import send_all, send_last
from relayd.tls.connection import TLSConnection, accept_failure
from relayd.tls.state import TLSState

INFINITY = float("inf")
RECV_SIZE = 65536


class SmtpdSession:
    """Serves one client connection; :meth:`run` returns when it is closed."""

    def __init__(self, service, sock, address):
        self.service = service
        self.sock = sock
        self.client_addr = _unmapped(address[0])
        self.client_port = address[1]
        self.deadline = INFINITY
        self.greenlet = gevent.getcurrent()
        self._writing = False  # a flush is under way (the client may have stopped reading)
        # The client's name is looked up from now on; run() waits for it before
        # the first thing that needs it (relayd.edge.peername).
        self._naming = service.peer_names.start(self.client_addr)
        self.dialogue: SmtpDialogue | None = None

    def _dialogue(self, peer: PeerName) -> SmtpDialogue:
        """The session's dialogue and policy, once the client's name is known."""
        service, sock, client_addr = self.service, self.sock, self.client_addr
        notes: dict = {}
        view = SessionView(client_addr, peer.name, self.client_port,
                           reverse_client_name=peer.reverse_name,
                           client_name_status=peer.name_status,
                           reverse_client_name_status=peer.reverse_status)
        dialogue = SmtpDialogue(
            service.dialogue_settings, ServerSession(**service.core_options),
            service.restrictions.session(view, notes), cleanup=service.cleanup,
            queue=service.store, hooks=service.hooks, client_name=peer.name,
            client_addr=client_addr, notes=notes, guard=_Uninterruptible(self))
        dialogue.tls_required = service.tls is not None and service.tls.level == "encrypt"
        dialogue.local_address = lambda: _unmapped(sock.getsockname()[0])   # for AUTH
        dialogue.auth_rate = lambda: service.count_auth(client_addr)
        return dialogue

    def run(self) -> None:
        dialogue = self.dialogue = self._dialogue(self.service.peer_names.wait(self._naming))
        dialogue.connect()
        self.service.sweeper.watch(self)
        try:
            if self.service.tls is not None and self.service.tls.wrapper:
                if not self._start_tls(starttls=False):
                    return
            self._serve()
        except SessionTimeout:
            self._say_last(dialogue.timed_out())
        except ProtocolError as exc:
            self._say_last(dialogue.protocol_error(exc))
        except OSError:
            dialogue.connection_lost()
        finally:
            self.service.sweeper.unwatch(self)
            self.sock.close()
            dialogue.finish()

    def _serve(self) -> None:
        dialogue = self.dialogue
        sock = self.sock
        timeout = self.service.timeout
        sweeper = self.service.sweeper
        dialogue.greet()
        self.deadline = sweeper.now() + timeout
        while True:
            step = dialogue.next_step()
            if step is NEED_DATA:
                if dialogue.output:
                    self._flush()
                dialogue.receive_data(sock.recv(RECV_SIZE))
                continue
            self.deadline = sweeper.now() + timeout
            if step is CLOSE:
                self._flush()
                return
            if step is START_TLS:
                self._flush()
                if not self._start_tls():
                    return
                sock = self.sock
                self.deadline = sweeper.now() + timeout
            elif step:
                gevent.sleep(step)   # smtpd_error_sleep_time

    def _start_tls(self, starttls: bool = True) -> bool:
        """The server handshake, bounded by smtpd_starttls_timeout; False when it failed."""
        tls = self.service.tls
        conn = TLSConnection(self.sock, tls.context)
        conn.conn.set_app_data(self.dialogue.peer)   # for the SNI log line
        self.deadline = self.service.sweeper.now() + tls.timeout
        self._writing = True   # no plaintext "421 timeout" into a half-done handshake
        try:
            conn.accept()
        except (SSL.Error, OSError) as exc:
            self.dialogue.tls_failed(*accept_failure(exc))
            return False
        except SessionTimeout:   # tls_bio's ETIMEDOUT: logged as a failed handshake
            self.deadline = INFINITY
            self.dialogue.tls_failed(os.strerror(errno.ETIMEDOUT))
            return False
        self._writing = False
        self.sock = conn
        state = TLSState.of(conn, tls)
        self.dialogue.tls_started(state, loglevel=tls.loglevel, starttls=starttls,
                                  comment=state.received_comment() if tls.received_header
                                  else ())
        return True

    def _flush(self) -> None:
        """Write the collected replies; the session deadline bounds the wait."""
        data = self.dialogue.take_output()
        if data:
            self._writing = True
            send_all(self.sock, data)
            self._writing = False

    def _say_last(self, data: bytes) -> None:
        """Write the replies still owed to pipelined commands and the last reply,
        without waiting (:func:`~relayd.sockets.send_last`). After a write that
        was cut short nothing more is sent: it would land inside a reply."""
        if not self._writing:
            send_last(self.sock, data)


class _Uninterruptible:
    """No deadline while a message is committed: it may already be durable."""

    __slots__ = ("session",)

    def __init__(self, session: SmtpdSession):
        self.session = session

    def __enter__(self) -> None:
        self.session.deadline = INFINITY

    def __exit__(self, *exc) -> None:
        session = self.session
        session.deadline = session.service.sweeper.now() + session.service.timeout


def _unmapped(addr: str) -> str:
    """An IPv4-mapped IPv6 address as the IPv4 address it is."""
    return addr[7:] if addr.startswith("::ffff:") and "." in addr else addr

"""A TLS connection that cooperates with gevent: pyOpenSSL over a gevent socket.

OpenSSL works on the socket's non-blocking descriptor; when it wants to read
or write, :class:`TLSConnection` waits for the descriptor with gevent
(``wait_read``/``wait_write``) and tries again, so a handshake or a slow
peer costs one greenlet and never a thread or the event loop. It offers the
calls the drivers use on a plain socket (``recv``, ``send``, ``sendall``,
``close``), so :func:`relayd.sockets.send_all` and ``send_last`` work on it.
The server and the client (delivery) differ only in the context and
:meth:`accept`/:meth:`connect`.
"""
from __future__ import annotations

import os

from gevent.socket import wait_read, wait_write
from OpenSSL import SSL
# pyOpenSSL has no public call for session_reused; its cffi binding has it.
from OpenSSL._util import lib as _lib


def _error_queue(exc: Exception) -> list[tuple]:
    errors = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    return [e for e in errors if isinstance(e, tuple) and len(e) == 3]


def tls_error_reason(exc: Exception) -> str:
    """OpenSSL's reasons for a failed handshake, for the log ("wrong version number")."""
    reasons = [str(e[-1]) for e in _error_queue(exc)]
    return "; ".join(reasons) or str(exc) or type(exc).__name__


def accept_failure(exc: Exception) -> tuple[str, list[str]]:
    """What tls_server.c logs when SSL_accept fails: the "SSL_accept error from
    ...: X" detail and the OpenSSL errors of its "TLS library problem: ..."
    warnings. Postfix's error text also has OpenSSL's error code and source
    line ("error:0A00010B:SSL routines::wrong version number:file:line:"),
    which pyOpenSSL does not pass on: these read "error:SSL routines::wrong
    version number"."""
    if isinstance(exc, SSL.Error):
        return "-1", ["error:" + ":".join(map(str, e)) for e in _error_queue(exc)]
    errno = getattr(exc, "errno", None)
    if not errno or errno < 0:   # EOF in the middle of the handshake
        return "lost connection", []
    return os.strerror(errno), []


class TLSConnection:
    """``sock`` (a connected gevent socket) wrapped by ``context``'s TLS."""

    __slots__ = ("sock", "conn", "_fd")

    def __init__(self, sock, context: SSL.Context):
        self.sock = sock
        self.conn = SSL.Connection(context, sock)
        self._fd = sock.fileno()

    def accept(self) -> None:
        """The server's handshake. SSL.Error on a failed handshake, OSError
        when the peer goes away; the caller's deadline bounds the wait."""
        self.conn.set_accept_state()
        self._call(self.conn.do_handshake)

    def connect(self, server_name: str | None = None) -> None:
        """The client's handshake, with SNI ``server_name`` when given."""
        if server_name:
            self.conn.set_tlsext_host_name(server_name.encode("idna"))
        self.conn.set_connect_state()
        self._call(self.conn.do_handshake)

    def _call(self, method, *args, timeout=None):
        """Run an OpenSSL call, waiting on the socket as long as it wants I/O.

        ``timeout=0.0`` never waits (gevent raises ``socket.timeout``)."""
        while True:
            try:
                return method(*args)
            except SSL.WantReadError:
                wait_read(self._fd, timeout)
            except SSL.WantWriteError:
                wait_write(self._fd, timeout)
            except SSL.SysCallError as exc:
                errno = exc.args[0] if exc.args else -1
                raise ConnectionResetError(errno, str(exc)) from None

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes; b"" when the peer closed (with or without close_notify)."""
        try:
            return self._call(self.conn.recv, size)
        except SSL.ZeroReturnError:
            return b""
        except ConnectionResetError as exc:
            if exc.errno == -1:  # EOF without close_notify: a plain close for SMTP
                return b""
            raise

    def send(self, data, flags: int = 0, timeout=None) -> int:
        """Write some of ``data`` (one record at most); the count written."""
        return self._call(self.conn.send, data, timeout=timeout)

    def sendall(self, data) -> None:
        """Write all of ``data``."""
        view = memoryview(data)
        while view:
            view = view[self.send(view):]

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Send close_notify if it goes out at once, then close the socket."""
        try:
            self.conn.shutdown()
        except (SSL.Error, OSError):
            pass
        self.sock.close()

    # -- what the log lines and Received need -------------------------------------------

    @property
    def protocol(self) -> str:
        """"TLSv1.3" etc."""
        return self.conn.get_protocol_version_name()

    @property
    def cipher(self) -> str:
        return self.conn.get_cipher_name() or ""

    @property
    def cipher_bits(self) -> tuple[int, int]:
        """(used, algorithm) bits, as Postfix prints "(256/256 bits)"."""
        bits = self.conn.get_cipher_bits() or 0
        return bits, bits

    def peer_certificate(self):
        """The peer's certificate (cryptography's x509), None when it sent none."""
        return self.conn.get_peer_certificate(as_cryptography=True)

    @property
    def session_reused(self) -> bool:
        """Whether the handshake resumed an earlier session (ticket or cache)."""
        return bool(_lib.SSL_session_reused(self.conn._ssl))

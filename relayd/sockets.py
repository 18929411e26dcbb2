"""Small socket and descriptor helpers shared by the SMTP drivers and the processes."""
from __future__ import annotations

import os
import tempfile

from gevent import socket as gsocket


def send_all(sock, data: bytes) -> None:
    """Write all of ``data`` to a gevent socket.

    gevent's ``sendall`` asks the kernel for SO_SNDBUF on every call; a reply
    or a pipelined command group nearly always fits one ``send``, so try that
    first and fall back to ``sendall`` for the rest. It waits as long as the
    peer does not read: the caller's deadline (the session sweeper) bounds it.
    """
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])


def send_last(sock, data: bytes) -> None:
    """Hand ``data`` (a connection's last words) to the kernel without ever waiting.

    Used once a session is over, when no deadline watches it any more: what
    the send buffer takes now goes out, the rest is dropped, so a peer that
    stopped reading cannot hold the connection open (``timeout=0.0``: gevent
    raises instead of waiting for the socket to become writable).
    """
    try:
        sock.send(data, 0, timeout=0.0)
    except OSError:
        pass


def drain(fd: int) -> None:
    """Read a non-blocking descriptor (a wake-up pipe) until it is empty."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


# The name a socket is bound at inside its staging directory (an 8-character mkdtemp
# name): short, as the whole staging path must fit a socket address too.
_STAGED = "s"


def staging_path(path: str) -> str:
    """The path :func:`bind_in_place` binds at for ``path`` (as long as any
    staging name beside it), which must fit a socket address as ``path`` does."""
    return os.path.join(os.path.dirname(path), "x" * 8, _STAGED)


def bind_in_place(path: str, kind: int, mode: int):
    """A gevent UNIX socket of ``kind`` at ``path`` with ``mode`` from the moment
    it appears there: bound inside a private directory beside it, then renamed
    into place (no window with the umask's mode)."""
    staging = tempfile.mkdtemp(prefix="", dir=os.path.dirname(path))
    bound = os.path.join(staging, _STAGED)
    sock = gsocket.socket(gsocket.AF_UNIX, kind)
    try:
        sock.bind(bound)
        os.chmod(bound, mode)
        os.replace(bound, path)
    except BaseException:
        sock.close()
        raise
    finally:
        if os.path.lexists(bound):
            os.unlink(bound)
        os.rmdir(staging)
    return sock

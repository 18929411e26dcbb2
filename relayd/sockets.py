"""Small socket and descriptor helpers shared by the SMTP drivers and the processes."""
from __future__ import annotations

import os


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

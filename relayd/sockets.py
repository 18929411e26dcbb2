"""Small socket helpers shared by the SMTP server and client drivers."""
from __future__ import annotations


def send_all(sock, data: bytes) -> None:
    """Write all of ``data`` to a gevent socket.

    gevent's ``sendall`` asks the kernel for SO_SNDBUF on every call; a reply
    or a pipelined command group nearly always fits one ``send``, so try that
    first and fall back to ``sendall`` for the rest.
    """
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])

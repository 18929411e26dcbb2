"""What the TLS load tools share: an SMTP line reader over a gevent socket (plain or
TLS), the client side's EHLO/STARTTLS steps, and running a function in several
forked worker processes with their results and CPU gathered.

The tools use the standard library's ssl module through gevent (the handshake and
every read wait on the socket cooperatively, OpenSSL does the crypto in C), one
gevent hub per forked process: with 2 cores a single Python process would be the
bottleneck long before the relay is.
"""
from __future__ import annotations

import json
import os
import resource
import ssl
import time

from gevent import socket
from gevent import ssl as gssl

HOST = "127.0.0.1"


class SmtpError(Exception):
    """An SMTP reply other than the one expected, or a connection lost."""


class Wire:
    """Buffered SMTP lines over a (gevent) socket; ``starttls`` swaps the socket."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.buf = b""

    def fill(self) -> None:
        """Read more into the buffer; SmtpError when the peer closed."""
        data = self.sock.recv(65536)
        if not data:
            raise SmtpError("connection lost")
        self.buf += data

    def line(self) -> bytes:
        """One line without its CRLF."""
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                return line
            if len(self.buf) > 65536:
                raise SmtpError("line too long")
            self.fill()

    def reply(self, expect: bytes = b"2") -> list[bytes]:
        """A whole (multi-line) reply; SmtpError unless its code starts with *expect*."""
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        if not lines[-1].startswith(expect):
            raise SmtpError(b" / ".join(lines).decode(errors="replace"))
        return lines

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


def client_context() -> ssl.SSLContext:
    """TLS 1.2 or newer, no certificate check (as Postfix's level encrypt); gevent's
    SSLContext, whose sockets wait cooperatively."""
    ctx = gssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def connect_starttls(port: int, ctx, helo: str, timeout: float, session=None):
    """Connect, read the greeting, EHLO, STARTTLS, handshake, EHLO again.

    Returns the Wire over the TLS socket; *ctx* None stays in plaintext."""
    sock = socket.socket()  # not create_connection: that asks gevent's resolver thread
    sock.settimeout(timeout)
    sock.connect((HOST, port))
    # The end of a message is a short TLS record after full ones: without this, Nagle
    # holds it for the server's delayed ACK (about 40 ms per message).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wire = Wire(sock)
    wire.reply(b"220")
    ehlo = b"EHLO " + helo.encode() + b"\r\n"
    wire.send(ehlo)
    features = wire.reply()
    if ctx is None:
        return wire
    if not any(line[4:].upper() == b"STARTTLS" for line in features):
        raise SmtpError("the server does not offer STARTTLS")
    wire.send(b"STARTTLS\r\n")
    wire.reply(b"220")
    if wire.buf:
        raise SmtpError("server sent data after its STARTTLS reply")
    wire.sock = ctx.wrap_socket(sock, server_hostname=None, session=session)
    wire.send(ehlo)
    wire.reply()
    return wire


def run_workers(procs: int, work, *args) -> tuple[list[dict], float, float]:
    """Fork *procs* processes that each run ``work(index, procs, *args)`` (a dict).

    Returns the dicts, the wall time and the children's CPU seconds (user+sys).
    A worker that raised returns ``{"error": ...}``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pipes, pids = [], []
    t0 = time.monotonic()
    for index in range(procs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: its result goes up the pipe as JSON
            os.close(r)
            try:
                result = work(index, procs, *args)
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                result = {"error": repr(e)}
            os.write(w, json.dumps(result).encode())
            os._exit(0)
        os.close(w)
        pipes.append(r)
        pids.append(pid)
    results = []
    for r, pid in zip(pipes, pids):
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        results.append(json.loads(data) if data else {"error": "worker died"})
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return results, wall, cpu


def share(total: int, parts: int, index: int) -> int:
    """Part *index* of *total* split as evenly as possible into *parts*."""
    return total // parts + (1 if index < total % parts else 0)

#!/usr/bin/env python3
"""TLS sink: smtp-sink with STARTTLS.

Listens on 127.0.0.1:PORT, offers STARTTLS with the given certificate (and
PIPELINING), answers 250 to everything (354 to DATA, 221 to QUIT), and counts
sessions and messages. W forked worker processes accept on one listening socket,
each a gevent hub with the stdlib ssl module. smtp-sink's options -u, -c, -m and the
backlog are accepted, so that ../shared/bench/bench.py can drive it in
smtp-sink's place.

The parent prints smtp-sink -c style counters whenever they change (at most every
10 ms), ``sess=S quit=Q mesg=M tls=T`` (T: messages received over TLS), and with
-n N one line ``reached N messages in X s`` (time from the first message) when
the N-th arrived; with --exit-at-n it then exits. SIGTERM stops it and its
workers; its exit then reports the workers' CPU.

  tls_sink.py --cert chain.pem [--key key.pem] [-w 2] [-n 1000] [-h NAME] 127.0.0.1:10071
"""
from __future__ import annotations

import argparse
import mmap
import os
import resource
import signal
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tlswire import SmtpError, Wire  # noqa: E402

SLOT = struct.Struct("4q")  # sessions, quits, messages, messages over TLS (one slot per worker)


class Counters:
    """One slot per worker in a shared anonymous mapping: no locks, each writes its own."""

    def __init__(self, workers: int) -> None:
        self.map = mmap.mmap(-1, SLOT.size * workers)
        self.workers = workers
        self.mine = [0, 0, 0, 0]
        self.offset = 0

    def bump(self, field: int) -> None:
        self.mine[field] += 1
        SLOT.pack_into(self.map, self.offset, *self.mine)

    def total(self) -> list[int]:
        sums = [0, 0, 0, 0]
        for w in range(self.workers):
            for i, v in enumerate(SLOT.unpack_from(self.map, w * SLOT.size)):
                sums[i] += v
        return sums


class Session:
    """One SMTP session; replies to pipelined commands go out together."""

    def __init__(self, sock, ctx, counters: Counters, hostname: bytes) -> None:
        self.wire, self.ctx, self.counters = Wire(sock), ctx, counters
        self.tls = False
        head = b"250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n" % hostname
        self.ehlo = {False: head + b"250-STARTTLS\r\n250 SIZE 0\r\n", True: head + b"250 SIZE 0\r\n"}
        self.out: list[bytes] = []

    def run(self) -> None:
        self.counters.bump(0)
        self.wire.send(b"220 sink.bench.invalid ESMTP\r\n")
        try:
            while self.command(self.next_line()):
                pass
            self.counters.bump(1)
        except (SmtpError, OSError):
            pass
        finally:
            self.flush()

    def next_line(self) -> bytes:
        if b"\r\n" not in self.wire.buf:
            self.flush()  # nothing more pipelined: the client waits for these replies
        return self.wire.line()

    def flush(self) -> None:
        if self.out:
            try:
                self.wire.send(b"".join(self.out))
            except OSError:
                pass
            self.out = []

    def command(self, line: bytes) -> bool:
        verb = line[:4].upper()
        if verb == b"EHLO":
            self.out.append(self.ehlo[self.tls])
        elif verb == b"DATA":
            self.out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            self.flush()
            self.data()
        elif verb == b"QUIT":
            self.out.append(b"221 2.0.0 Bye\r\n")
            return False
        elif verb == b"STAR" and not self.tls and self.ctx is not None:
            self.out.append(b"220 2.0.0 Ready to start TLS\r\n")
            self.flush()
            self.wire.buf = b""  # anything pipelined after STARTTLS is discarded
            self.wire.sock = self.ctx.wrap_socket(self.wire.sock, server_side=True)
            self.tls = True
        else:
            self.out.append(b"250 2.0.0 Ok\r\n")
        return True

    def data(self) -> None:
        """Read up to the lone dot (searching only the new bytes), then 250."""
        wire, start = self.wire, 0
        while (end := wire.buf.find(b"\r\n.\r\n", start)) < 0 and not wire.buf.startswith(b".\r\n"):
            start = max(0, len(wire.buf) - 4)
            wire.fill()
        cut = 3 if end < 0 else end + 5
        wire.buf = wire.buf[cut:]
        self.counters.bump(2)
        if self.tls:
            self.counters.bump(3)
        self.out.append(b"250 2.0.0 Ok: queued\r\n")


def server_context(cert: str, key: str | None):
    from gevent import ssl as gssl
    ctx = gssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def worker(index: int, listener: socket.socket, a, counters: Counters) -> None:
    from gevent import socket as gsocket
    from gevent.server import StreamServer
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    counters.offset = index * SLOT.size
    ctx = server_context(a.cert, a.key)
    hostname = a.hostname.encode()

    def handle(sock, _address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        Session(sock, ctx, counters, hostname).run()

    listener = gsocket.socket(fileno=listener.detach())  # gevent's accept, not the blocking one
    StreamServer(listener, handle).serve_forever()


def watch(a, counters: Counters) -> None:
    """Print the counters as they change; the N-th message's arrival; exit when asked."""
    last, first_at, reached = None, None, False
    while True:
        now = counters.total()
        if now != last:
            print(f"sess={now[0]} quit={now[1]} mesg={now[2]} tls={now[3]}", flush=True)
            last = now
            if now[2] and first_at is None:
                first_at = time.monotonic()
            if a.n and now[2] >= a.n and not reached:
                reached = True
                print(f"reached {a.n} messages in {time.monotonic() - first_at:.3f} s", flush=True)
                if a.exit_at_n:
                    return
        time.sleep(0.01)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, add_help=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--help", action="help")
    p.add_argument("listen", help="127.0.0.1:PORT")
    p.add_argument("backlog", nargs="?", type=int, default=1024)
    p.add_argument("--cert", default=os.environ.get("TLS_SINK_CERT"),
                   help="PEM: certificate (and chain), or key+chain (default: $TLS_SINK_CERT)")
    p.add_argument("--key", help="PEM key (default: in --cert)")
    p.add_argument("-w", dest="workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: one per core)")
    p.add_argument("-n", type=int, default=0, help="report when this many messages arrived")
    p.add_argument("--exit-at-n", action="store_true")
    p.add_argument("-h", dest="hostname", default="sink.bench.invalid", help="EHLO name")
    # smtp-sink's options that bench.py passes: accepted, no effect
    p.add_argument("-u", dest="user")
    p.add_argument("-c", dest="counters", action="store_true", help="(counters are always on)")
    p.add_argument("-m", dest="max_sessions", type=int)
    a = p.parse_args(argv)
    if not a.cert:
        p.error("--cert (or $TLS_SINK_CERT) is required")
    host, _, port = a.listen.rpartition(":")
    if host != "127.0.0.1":
        p.error("listen on 127.0.0.1:PORT only")
    server_context(a.cert, a.key)  # a bad certificate fails here, not in every worker
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(a.backlog)
    counters = Counters(a.workers)
    pids = []
    for index in range(a.workers):
        pid = os.fork()
        if pid == 0:
            try:
                worker(index, listener, a, counters)
            finally:
                os._exit(1)
        pids.append(pid)
    listener.close()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        watch(a, counters)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"workers' CPU {ru.ru_utime + ru.ru_stime:.2f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

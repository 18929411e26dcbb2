#!/usr/bin/env python3
"""TLS load generator: smtp-source with STARTTLS.

N messages of SIZE bytes over S concurrent sessions to 127.0.0.1:PORT; every
session does EHLO, STARTTLS, EHLO again, then MAIL/RCPT/DATA pipelined (the
server must offer PIPELINING, as relayd and Postfix do), the content, and waits
for the reply to the end of data. One message per session (the default) or, with
-d, persistent sessions as smtp-source -d; with -N each recipient is
different (``{i}rcpt@sink.example``). smtp-source's options, so that
../shared/bench/bench.py can drive it in smtp-source's place. The sessions are spread over P
forked processes, each a gevent hub with the stdlib ssl module.

Exit status 0 only if every message got a 2xx after DATA. Prints messages/s and
the tool's own CPU; --json prints one JSON line instead.

  tls_source.py -s 20 -m 1000 -l 4096 [-d] [-N] [-P 2] [--plain] 127.0.0.1:10070
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import gevent  # imported before the fork (no hub yet), so the workers do not pay for it

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tlswire import SmtpError, client_context, connect_starttls, run_workers, share  # noqa: E402


def message(size: int) -> bytes:
    """Headers and a body of *size* bytes in 78-column lines, dot-safe, ending with CRLF.CRLF."""
    head = b"From: <sender@bench.example>\r\nTo: <rcpt@sink.example>\r\nSubject: tls bench\r\n\r\n"
    line = b"x" * 78 + b"\r\n"
    body = line * (size // len(line)) + b"y" * (size % len(line)) + b"\r\n"
    return head + body + b".\r\n"


def transaction(wire, a, content: bytes, number: int) -> None:
    """MAIL, RCPT, DATA pipelined, the content, then the 250 after DATA."""
    recipient = b"%d%s" % (number, a.recipient.encode()) if a.numbered else a.recipient.encode()
    wire.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (a.sender.encode(), recipient))
    wire.reply()
    wire.reply()
    wire.reply(b"354")
    wire.send(content)
    wire.reply()


def session(a, ctx, content: bytes, numbers, state: dict) -> None:
    """One SMTP session delivering the messages numbered by *numbers* (an iterator)."""
    wire = None
    try:
        for number in numbers:
            if wire is None:
                wire = connect_starttls(a.port, ctx, a.helo, a.timeout)
                state["sessions"] += 1
            transaction(wire, a, content, number)
            state["ok"] += 1
            if not a.persistent:
                wire.send(b"QUIT\r\n")
                wire.reply()
                wire.sock.close()
                wire = None
        if wire is not None:
            wire.send(b"QUIT\r\n")
            wire.reply()
    except (SmtpError, OSError) as e:
        state["failed"] += 1
        state.setdefault("error", f"{type(e).__name__}: {e}")
    finally:
        if wire is not None:
            wire.sock.close()


def worker(index: int, procs: int, a) -> dict:
    """This process's share of the messages over its share of the sessions."""
    n, sessions = share(a.n, procs, index), share(a.sessions, procs, index)
    first = sum(share(a.n, procs, i) for i in range(index)) + 1
    ctx = None if a.plain else client_context()
    content = message(a.size)
    state = {"ok": 0, "failed": 0, "sessions": 0}
    if a.persistent:  # the messages dealt out to fixed sessions
        groups = [iter(range(first + s, first + n, max(sessions, 1))) for s in range(sessions)]
    else:  # one iterator shared by all sessions: each takes the next number in turn
        groups = [iter(range(first, first + n))] * sessions
    gevent.joinall([gevent.spawn(session, a, ctx, content, g, state) for g in groups])
    return state


def parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="127.0.0.1:PORT (only 127.0.0.1)")
    p.add_argument("-m", dest="n", type=int, default=100, help="messages (100)")
    p.add_argument("-l", dest="size", type=int, default=4096, help="body size in bytes (4096)")
    p.add_argument("-s", dest="sessions", type=int, default=20, help="concurrent sessions (20)")
    p.add_argument("-d", dest="persistent", action="store_true",
                   help="persistent sessions: all messages over the S sessions")
    p.add_argument("-P", dest="procs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: one per core)")
    p.add_argument("--plain", action="store_true", help="no STARTTLS (reference figures)")
    p.add_argument("-M", dest="helo", default="source.bench.example", help="EHLO name")
    p.add_argument("-f", dest="sender", default="sender@bench.example")
    p.add_argument("-t", dest="recipient", default="rcpt@sink.example")
    p.add_argument("-N", dest="numbered", action="store_true",
                   help="a different recipient per message: {i}RECIPIENT")
    p.add_argument("-C", dest="retries", type=int, default=1,
                   help="accepted for smtp-source compatibility; no reconnects")
    p.add_argument("--timeout", type=float, default=60, help="per socket operation (60 s)")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    a = p.parse_args(argv)
    host, _, port = a.target.rpartition(":")
    if host != "127.0.0.1":
        p.error("the target must be 127.0.0.1:PORT")
    a.port = int(port)
    a.procs = max(1, min(a.procs, a.sessions))
    return a


def main(argv=None) -> int:
    a = parse(argv)
    results, wall, cpu = run_workers(a.procs, worker, a)
    ok = sum(r.get("ok", 0) for r in results)
    errors = [r["error"] for r in results if "error" in r]
    out = {"messages": ok, "wanted": a.n, "seconds": round(wall, 3),
           "rate": round(ok / wall, 1), "cpu_s": round(cpu, 2),
           "cpu_ms_per_msg": round(cpu * 1000 / max(ok, 1), 3),
           "sessions": sum(r.get("sessions", 0) for r in results),
           "tls": not a.plain, "error": errors[0] if errors else None}
    if a.json:
        print(json.dumps(out), flush=True)
    else:
        print(f"tls_source: {ok}/{a.n} messages in {wall:.2f} s: {out['rate']} msg/s; "
              f"own CPU {cpu:.2f} s ({out['cpu_ms_per_msg']} ms/msg) in {a.procs} processes"
              + (f"; first error: {errors[0]}" if errors else ""), flush=True)
    return 0 if ok == a.n and not errors else 1


if __name__ == "__main__":
    sys.exit(main())

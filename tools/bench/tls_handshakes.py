#!/usr/bin/env python3
"""STARTTLS handshakes per second against an SMTP server on 127.0.0.1:PORT.

Each handshake is a whole session: connect, greeting, EHLO, STARTTLS, the TLS
handshake, EHLO again (the first reply over TLS, so the handshake is complete on
both sides), QUIT. C concurrent sessions over P forked processes (gevent + the
stdlib ssl module), for --seconds or until --count handshakes. Full handshakes by
default; --resume offers each process's last TLS session again (tickets), as a
returning client would.

Prints handshakes/s, failures and the tool's own CPU (--json: one JSON line).
Exit status 0 if at least one handshake succeeded and none failed.

  tls_handshakes.py -c 20 --seconds 10 127.0.0.1:10060
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import gevent  # imported before the fork (no hub yet), so the workers do not pay for it

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tlswire import SmtpError, client_context, connect_starttls, run_workers, share  # noqa: E402


def loop(a, ctx, deadline: float, state: dict) -> None:
    """Handshake after handshake until the deadline or the process's count is done."""
    while time.monotonic() < deadline and state["left"] > 0:
        state["left"] -= 1
        wire = None
        try:
            wire = connect_starttls(a.port, ctx, a.helo, a.timeout,
                                    session=state.get("session") if a.resume else None)
            wire.send(b"QUIT\r\n")
            wire.reply()
            state["ok"] += 1
            state["resumed"] += wire.sock.session_reused
            state["session"] = wire.sock.session  # the ticket arrived with the replies
        except (SmtpError, OSError) as e:
            state["failed"] += 1
            state.setdefault("error", f"{type(e).__name__}: {e}")
        finally:
            if wire is not None:
                wire.sock.close()


def worker(index: int, procs: int, a) -> dict:
    ctx = client_context()
    state = {"ok": 0, "failed": 0, "resumed": 0,
             "left": share(a.count, procs, index) if a.count else float("inf")}
    deadline = time.monotonic() + a.seconds
    gevent.joinall([gevent.spawn(loop, a, ctx, deadline, state)
                    for _ in range(share(a.concurrency, procs, index))])
    state.pop("session", None)
    state.pop("left")
    return state


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="127.0.0.1:PORT (only 127.0.0.1)")
    p.add_argument("-c", dest="concurrency", type=int, default=20, help="concurrent sessions (20)")
    p.add_argument("-P", dest="procs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: one per core)")
    p.add_argument("--seconds", type=float, default=10, help="run this long (10)")
    p.add_argument("--count", type=int, default=0, help="stop after this many handshakes")
    p.add_argument("--resume", action="store_true", help="resume TLS sessions (tickets)")
    p.add_argument("--helo", default="handshakes.bench.example")
    p.add_argument("--timeout", type=float, default=30, help="per socket operation (30 s)")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    a = p.parse_args(argv)
    host, _, port = a.target.rpartition(":")
    if host != "127.0.0.1":
        p.error("the target must be 127.0.0.1:PORT")
    a.port = int(port)
    a.procs = max(1, min(a.procs, a.concurrency))
    results, wall, cpu = run_workers(a.procs, worker, a)
    ok = sum(r.get("ok", 0) for r in results)
    failed = sum(r.get("failed", 0) for r in results)
    errors = [r["error"] for r in results if "error" in r]
    out = {"handshakes": ok, "failed": failed, "resumed": sum(r.get("resumed", 0) for r in results),
           "seconds": round(wall, 3), "rate": round(ok / wall, 1), "cpu_s": round(cpu, 2),
           "concurrency": a.concurrency, "error": errors[0] if errors else None}
    if a.json:
        print(json.dumps(out), flush=True)
    else:
        print(f"tls_handshakes: {ok} handshakes in {wall:.2f} s: {out['rate']}/s "
              f"({out['resumed']} resumed, {failed} failed); own CPU {cpu:.2f} s"
              + (f"; first error: {errors[0]}" if errors else ""), flush=True)
    return 0 if ok and not failed and not errors else 1


if __name__ == "__main__":
    sys.exit(main())

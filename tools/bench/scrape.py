"""Scrape a Prometheus endpoint every second, as Prometheus would, until killed.

    python3 tools/bench/scrape.py PORT [OUT]

Runs beside the benchmark (tools/bench/run with METRICS=PORT), outside the
measured relay's process tree, so that the relay's CPU figures include
serving the scrapes but not the scraper. Prints, at exit, how many scrapes
succeeded and the largest body, to OUT (default stderr). Standard library only.
"""
import signal
import sys
import time
import urllib.request

port = int(sys.argv[1])
out = open(sys.argv[2], "a") if len(sys.argv) > 2 else sys.stderr
ok = failed = largest = 0


def report(*_):
    print(f"scrapes ok={ok} failed={failed} largest={largest} bytes", file=out, flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, report)
signal.signal(signal.SIGINT, report)
next_at = time.monotonic()
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            largest = max(largest, len(r.read()))
        ok += 1
    except OSError:
        failed += 1   # the relay is between runs
    next_at += 1.0
    time.sleep(max(0.0, next_at - time.monotonic()))

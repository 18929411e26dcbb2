#!/usr/bin/env python3
"""The TLS variant of ../shared/bench/bench.py: the same harness, workload and
measurements, with tls_source in smtp-source's place and tls_sink in smtp-sink's
(both speak STARTTLS; bench.py runs them with smtp-source's and smtp-sink's
options, which they accept). Its results are bench.py's JSON lines, so
``bench.py report`` reads them.

  tls_bench.py run|raw|report ...    bench.py's sub-commands and options
  tls_bench.py handshakes --label L --relay-port P (--peer-cmd C | --peer-start C
      --peer-stop C --peer-pidfile F) [--seconds 10] [--concurrency 20]
      [--repeats 3] [--out F]
                                     tls_handshakes against the relay, with the
                                     relay's CPU per handshake and peak memory

Environment: BENCH_DIR (../shared/bench beside the checkout), TLS_SINK_CERT (the
sink's key + certificate chain, PEM; required for run and raw).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.environ.get("BENCH_DIR") or os.path.join(ROOT, "..", "shared", "bench"))

import bench  # noqa: E402  (the shared harness)

TOOLS = {"smtp-source": "tls_source.py", "smtp-sink": "tls_sink.py"}


def tool_wrappers(directory: str) -> dict[str, str]:
    """Executables named as Postfix's tools that run ours with this interpreter."""
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name, script in TOOLS.items():
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nexec {sys.executable} {os.path.join(HERE, script)} \"$@\"\n")
        os.chmod(path, 0o755)
        paths[name] = path
    return paths


def handshakes(argv: list[str]) -> None:
    """Start the relay (as bench.py does), run tls_handshakes, record rate and relay CPU."""
    p = argparse.ArgumentParser(prog="tls_bench.py handshakes")
    p.add_argument("--label", required=True)
    p.add_argument("--relay-port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--peer-cmd")
    p.add_argument("--peer-log")
    p.add_argument("--peer-start")
    p.add_argument("--peer-stop")
    p.add_argument("--peer-pidfile")
    p.add_argument("--peer-pid", type=int)
    p.add_argument("--ready-timeout", type=float, default=30)
    p.add_argument("--out")
    a = p.parse_args(argv)
    out = open(a.out, "a") if a.out else None
    for rep in range(1, a.repeats + 1):
        peer = bench.Peer(a)
        peer.start()
        time.sleep(1)
        cpu0, _ = bench.tree_cpu_ticks(peer.root)
        sampler = bench.Sampler(peer.root, 0.1)
        sampler.start()
        cmd = [sys.executable, os.path.join(HERE, "tls_handshakes.py"), "--json",
               "-c", str(a.concurrency), "--seconds", str(a.seconds),
               f"{bench.HOST}:{a.relay_port}"] + (["--resume"] if a.resume else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        sampler.stop()
        cpu1, _ = bench.tree_cpu_ticks(peer.root)
        peer.stop(sampler.seen)
        rec = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        relay_cpu = (cpu1 - cpu0) / bench.CLK
        rec.update(kind="handshakes", label=a.label, repeat=rep, rc=done.returncode,
                   relay_cpu_s=round(relay_cpu, 2),
                   relay_cpu_ms_per_handshake=round(relay_cpu * 1000 / max(rec.get("handshakes", 0), 1), 3),
                   peak_rss_mb=round(sampler.peak_rss_kb / 1024, 1),
                   peak_pss_mb=round(sampler.peak_pss_kb / 1024, 1), resume=a.resume)
        line = json.dumps(rec)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()
        time.sleep(2)


def handshake_table(files: list[str]) -> None:
    """Markdown table of the handshakes records (median and range over the repeats)."""
    recs = []
    for fn in files:
        with open(fn) as f:
            recs += [r for r in map(json.loads, filter(str.strip, f)) if r.get("kind") == "handshakes"]
    print("### STARTTLS handshakes (connect, EHLO, STARTTLS, handshake, EHLO, QUIT)\n")
    print("| relay | ok runs | handshakes/s | relay CPU ms/handshake | peak ΣPSS MB | tool CPU s |")
    print("|---|---|---|---|---|---|")
    for label in dict.fromkeys(r["label"] for r in recs):
        rs = [r for r in recs if r["label"] == label]
        good = [r for r in rs if r.get("rc") == 0]
        print(f"| {label} | {len(good)}/{len(rs)} | {bench.med_range([r['rate'] for r in good])} "
              f"| {bench.med_range([r['relay_cpu_ms_per_handshake'] for r in good], '{:.2f}')} "
              f"| {bench.med_range([r['peak_pss_mb'] for r in good], '{:.1f}')} "
              f"| {bench.med_range([r['cpu_s'] for r in good], '{:.1f}')} |")
    print()


def main() -> None:
    if sys.argv[1:2] == ["handshakes"]:
        handshakes(sys.argv[2:])
        return
    if sys.argv[1:2] == ["handshake-table"]:
        handshake_table(sys.argv[2:])
        return
    if sys.argv[1:2] in (["run"], ["raw"]) and not os.environ.get("TLS_SINK_CERT"):
        sys.exit("tls_bench.py: set TLS_SINK_CERT to the sink's key + certificate chain (PEM)")
    wrappers = tool_wrappers(os.path.join(os.environ.get("RELAYBENCH_RUN", "/tmp/relaybench"),
                                          "tls-tools"))
    bench.find_tool = wrappers.__getitem__
    bench.main()


if __name__ == "__main__":
    main()

"""Micro-benchmark of hash: table lookups.

Builds a 100,000-entry access table with relayd's postmap into a temporary
directory, then looks up random keys (half present, half absent) for 3
seconds per run through the same ``Table.lookup`` smtpd checks call, and
prints lookups/s (best of 3 runs). Run: ``.venv/bin/python tools/bench/lookup.py``.
For comparison, the same loop over texthash: (an in-memory dict) is printed too.
"""
from __future__ import annotations

import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from relayd.tables.base import compile_table, open_table  # noqa: E402

ENTRIES, SECONDS, RUNS = 100_000, 3.0, 3


def lookups_per_second(table, keys: list[str]) -> float:
    """Best rate of RUNS runs of SECONDS each, cycling through *keys*."""
    best = 0.0
    for _ in range(RUNS):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < SECONDS:
            for key in keys:
                table.lookup(key)
            done += len(keys)
        best = max(best, done / (time.perf_counter() - start))
    return best


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "access")
        with open(path, "w") as f:
            for i in range(ENTRIES):
                f.write(f"user{i}@example{i % 997}.com REJECT no thanks {i}\n")
        started = time.perf_counter()
        compile_table("hash:" + path)
        print(f"postmap: {ENTRIES} entries in {time.perf_counter() - started:.2f} s")
        rng = random.Random(1)
        numbers = [rng.randrange(2 * ENTRIES) for _ in range(10_000)]  # half are absent
        keys = [f"user{i}@example{i % 997}.com" for i in numbers]
        for kind in ("hash", "texthash"):
            rate = lookups_per_second(open_table(f"{kind}:{path}"), keys)
            print(f"{kind}: {rate:,.0f} lookups/s")


if __name__ == "__main__":
    main()

"""mysql: lookups per second through relayd's pool, beside hash: measured the same way.

Starts a private MariaDB as the test suite does (tests/support/mariadb.py:
Debian's mariadbd, its own data directory, a loopback port), loads a
100,000-row recipient table, then for SECONDS per run has CONCURRENCY
greenlets look up random addresses (half present) through one
``mysql:`` table (``Table.lookup``, as relay_recipient_maps calls it) and
counts the lookups and the CPU this process spent (user + system, its pool
threads included) and the server's. The same greenlets then do the same over
a ``hash:`` table of the same rows. Prints the median of RUNS runs.

Run: ``.venv/bin/python tools/bench/mysql_lookups.py [--concurrency 16] [--seconds 5]
[--pool 8] [--tcp|--unix]``.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import gevent  # noqa: E402

from relayd.config import load_config  # noqa: E402
from relayd.tables.base import compile_table, open_table  # noqa: E402
from tests.support.mariadb import DBNAME, MariaDB, private_base, template_datadir  # noqa: E402

ROWS, RUNS = 100_000, 3
QUERY = "query = SELECT action FROM relay_recipients WHERE address = '%s' AND status = 'paid'\n"


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of process *pid* (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(table, keys: list[str], concurrency: int, seconds: float, server_pid: int | None):
    """(lookups/s, relayd CPU µs per lookup, server CPU µs per lookup) of one run."""
    done = [0] * concurrency
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(n)
        while time.monotonic() < deadline:
            table.lookup(keys[rng.randrange(len(keys))])
            done[n] += 1
            gevent.sleep(0)     # a hash: lookup never yields: let the others run, as sessions do
    cpu, server_cpu, start = cpu_self(), cpu_of(server_pid) if server_pid else 0.0, time.monotonic()
    gevent.joinall([gevent.spawn(client, n) for n in range(concurrency)])
    elapsed, total = time.monotonic() - start, sum(done)
    server = (cpu_of(server_pid) - server_cpu) / total * 1e6 if server_pid else 0.0
    return total / elapsed, (cpu_self() - cpu) / total * 1e6, server


def report(name: str, runs: list[tuple[float, float, float]]) -> None:
    rate, cpu, server = (statistics.median(r[i] for r in runs) for i in range(3))
    low, high = min(r[0] for r in runs), max(r[0] for r in runs)
    extra = f", server CPU {server:.0f} µs/lookup" if server else ""
    print(f"{name}: {rate:,.0f} lookups/s ({low:,.0f}-{high:,.0f}), "
          f"relayd CPU {cpu:.1f} µs/lookup{extra}")


def load_rows(server: MariaDB) -> None:
    import pymysql
    conn = pymysql.connect(unix_socket=server.socket, user="root", autocommit=True)
    with conn.cursor() as cursor:
        rows = [(f"user{i}@example{i % 997}.com", "paid", "OK") for i in range(ROWS)]
        for start in range(0, ROWS, 5000):
            cursor.executemany(f"INSERT INTO {DBNAME}.relay_recipients VALUES (%s, %s, %s)",
                               rows[start:start + 5000])
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--unix", action="store_true", help="the UNIX socket instead of TCP")
    args = parser.parse_args()
    base = private_base()
    server = MariaDB(template_datadir(base), "bench").start().load()
    try:
        load_rows(server)
        rng = random.Random(1)
        keys = [f"user{i}@example{i % 997}.com" for i in
                (rng.randrange(2 * ROWS) for _ in range(10_000))]      # half are absent
        with tempfile.TemporaryDirectory() as directory:
            config = load_config(main_cf=f"relayd_mysql_pool_size = {args.pool}\n")
            cf = server.table_file(Path(directory) / "t.cf", QUERY, tcp=not args.unix)
            mysql = open_table(f"mysql:{cf}", config)
            mysql.lookup(keys[0])      # connect before measuring
            print(f"{ROWS} rows, {args.concurrency} greenlets, {args.seconds:.0f} s x {RUNS}, "
                  f"pool {args.pool}, {'UNIX socket' if args.unix else 'TCP 127.0.0.1'}")
            report("mysql", [one_run(mysql, keys, args.concurrency, args.seconds,
                                     server.proc.pid) for _ in range(RUNS)])
            path = Path(directory) / "recipients"
            path.write_text("".join(f"user{i}@example{i % 997}.com OK\n" for i in range(ROWS)))
            compile_table(f"hash:{path}")
            hashed = open_table(f"hash:{path}")
            report("hash", [one_run(hashed, keys, args.concurrency, args.seconds, None)
                            for _ in range(RUNS)])
    finally:
        server.stop()
        import shutil
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Micro-benchmark: the cost of a 10-element restriction list per RCPT.

Builds hash: access tables of 10,000 entries each with relayd's postmap, a
main.cf whose smtpd_recipient_restrictions has 10 elements (four access-map
lookups, the syntax checks, relay control) and times SessionPolicy.on_rcpt,
the call the session driver makes for every RCPT, for a client outside
mynetworks sending to a relay domain (so every element runs). Prints the
microseconds per RCPT (best of 3 runs of 3 s), beside the same with an
empty recipient list (relay control only) for comparison.
Run: ``.venv/bin/python tools/bench/restrictions.py``.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from relayd.config import load_config  # noqa: E402
from relayd.pipeline.context import SessionView  # noqa: E402
from relayd.pipeline.restrictions import Restrictions  # noqa: E402
from relayd.tables.base import compile_table  # noqa: E402

TEN = ("permit_mynetworks, reject_non_fqdn_sender, reject_non_fqdn_recipient, "
       "reject_invalid_helo_hostname, check_client_access hash:{d}/clients, "
       "check_helo_access hash:{d}/helos, check_sender_access hash:{d}/senders, "
       "check_recipient_access hash:{d}/recipients, reject_unauth_pipelining, "
       "reject_unauth_destination")
SECONDS, RUNS = 3.0, 3


def build_tables(directory: str) -> None:
    for name in ("clients", "helos", "senders", "recipients"):
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            for i in range(10_000):
                f.write(f"key{i}.example.org OK\n")
        compile_table(f"hash:{path}")


def microseconds_per_rcpt(main_cf: str) -> float:
    policy = Restrictions(load_config(main_cf=main_cf)).session(
        SessionView("198.51.100.7", "unknown", 40000, "client.example.org", "ESMTP"))
    policy.on_helo("client.example.org", True)
    best = float("inf")
    for _ in range(RUNS):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < SECONDS:
            policy.on_mail("sender@example.org")
            for i in range(100):
                policy.on_rcpt(f"user{i}@relay.example")
            done += 100
        best = min(best, (time.perf_counter() - start) / done * 1e6)
    return best


def main() -> None:
    base = ("mynetworks = 192.0.2.0/24\nrelay_domains = relay.example\nalias_maps =\n"
            "smtpd_relay_restrictions =\n")
    with tempfile.TemporaryDirectory() as directory:
        build_tables(directory)
        ten = microseconds_per_rcpt(base + "smtpd_recipient_restrictions = "
                                    + TEN.format(d=directory) + "\n")
        one = microseconds_per_rcpt(base + "smtpd_recipient_restrictions = "
                                    "reject_unauth_destination\n")
    print(f"10-element smtpd_recipient_restrictions: {ten:.1f} µs per RCPT")
    print(f"reject_unauth_destination only:          {one:.1f} µs per RCPT")


if __name__ == "__main__":
    main()

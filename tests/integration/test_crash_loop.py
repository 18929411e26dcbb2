"""The crash loop: the whole daemon SIGKILLed again and again under load.

Each round lets several smtplib senders get messages acknowledged, kills
the master and its workers at once (SIGKILL to the process group), waits
until every one of them is dead, and starts relayd again on the same queue.
At the end every message that got a 250 must have reached the sink.
A message may reach it twice only if its delivery was in flight at a kill:
the sink took it from one relayd and took it again from a later one.

The suite runs 20 kills; RELAYD_CRASH_LOOP_KILLS=200 (say) runs a longer loop.
"""
import os
import smtplib
import threading
import time
from bisect import bisect_left
from collections import Counter

import pytest

KILLS = int(os.environ.get("RELAYD_CRASH_LOOP_KILLS", "20"))
SENDERS = 6


class Load:
    """Senders that keep sending, reconnecting whenever relayd is down."""

    def __init__(self, port: int, senders: int = SENDERS):
        self.port = port
        self.acknowledged: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._sender, args=(n,), daemon=True)
                        for n in range(senders)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> set[str]:
        """Stop sending; the tokens of every message acknowledged with 250."""
        self.stop.set()
        for t in self.threads:
            t.join(20)
        return self.acknowledged

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def _sender(self, n: int) -> None:
        m = 0
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
                    while not self.stop.is_set():
                        token = f"s{n}-m{m}"
                        m += 1
                        smtp.sendmail("load@example.org", [f"{token}@relay.example"],
                                      f"Subject: {token}\r\n\r\n{'x' * 1500}\r\n".encode())
                        with self.lock:  # only now, after the 250, is it acknowledged
                            self.acknowledged.add(token)
            except (smtplib.SMTPException, OSError):
                self.stop.wait(0.02)  # relayd is down (being restarted): try again


@pytest.mark.crash_loop
def test_sigkill_loop_under_load_loses_no_acknowledged_message(relayd_factory, sink, capsys):
    relayd = relayd_factory("relayd_worker_processes = 2\n")
    load = Load(relayd.port)
    load.start()
    boundaries = []  # sink session count at each kill: later sessions are a later relayd's
    try:
        for _ in range(KILLS):
            target = load.count() + 15
            deadline = time.monotonic() + 10
            while load.count() < target and time.monotonic() < deadline:
                time.sleep(0.01)
            relayd.kill9()
            boundaries.append(sink.sessions)
            relayd.start()
    finally:
        load.finish()
    acknowledged = set(load.acknowledged)

    def copies() -> Counter:
        return Counter(m.recipients[0].split("@")[0] for m in list(sink.messages))

    deadline = time.monotonic() + 60
    while not acknowledged <= set(copies()) and time.monotonic() < deadline:
        time.sleep(0.2)
    delivered = copies()
    lost = acknowledged - set(delivered)
    duplicates = {t: n for t, n in delivered.items() if n > 1}
    lifetimes: dict[str, list[int]] = {}
    for m in list(sink.messages):
        lifetimes.setdefault(m.recipients[0].split("@")[0], []).append(
            bisect_left(boundaries, m.session))
    with capsys.disabled():
        print(f"\ncrash loop: {KILLS} SIGKILLs of master and workers; "
              f"{len(acknowledged)} messages acknowledged, {len(set(delivered))} delivered "
              f"({len(set(delivered) - acknowledged)} of them never acknowledged), "
              f"{sum(n - 1 for n in duplicates.values())} duplicates of {len(duplicates)} "
              f"messages, {len(lost)} lost")
    assert not lost, f"{len(lost)} acknowledged messages lost: {sorted(lost)[:10]}"
    assert len(acknowledged) >= 10 * KILLS
    # A second copy only from a later relayd: the first was in flight at a kill.
    same_lifetime = {t: lifetimes[t] for t in duplicates
                     if len(set(lifetimes[t])) < len(lifetimes[t])}
    assert not same_lifetime, f"delivered twice by one relayd: {same_lifetime}"

"""Micro-benchmark of the queue store's group commit.

20 greenlets commit 4 KiB messages for 5 seconds into a fresh queue directory
(fdatasync on, as in production) and the script prints commits/s and
fdatasyncs/s. Run: ``.venv/bin/python tools/bench/queue_commits.py [DIRECTORY]``
(default: a temporary directory on the same file system as /tmp).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import gevent

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from relayd.queue.envelope import Envelope, Recipient  # noqa: E402
from relayd.queue.store import QueueStore  # noqa: E402

SESSIONS, SECONDS, MESSAGE = 20, 5.0, b"X" * 4096


def session(store: QueueStore, deadline: float, counts: list[int]) -> None:
    while time.monotonic() < deadline:
        qid = store.new_queue_id()
        writer = store.content_writer(qid)
        writer.write(MESSAGE)
        env = Envelope("bench@example.org", [Recipient("rcpt@example.net")], time.time(),
                       size=len(MESSAGE))
        store.commit(qid, env, writer)
        counts[0] += 1


def main() -> None:
    parent = sys.argv[1] if len(sys.argv) > 1 else None
    syncs = [0]
    real_fdatasync = os.fdatasync

    def counting_fdatasync(fd: int) -> None:
        syncs[0] += 1
        real_fdatasync(fd)

    os.fdatasync = counting_fdatasync
    with tempfile.TemporaryDirectory(dir=parent) as directory:
        store = QueueStore(directory)
        store.open()
        counts = [0]
        start = time.monotonic()
        gevent.joinall([gevent.spawn(session, store, start + SECONDS, counts) for _ in range(SESSIONS)])
        elapsed = time.monotonic() - start
        store.close()
    print(f"{SESSIONS} sessions, {len(MESSAGE)} B messages, {elapsed:.1f} s: "
          f"{counts[0] / elapsed:.0f} commits/s, {syncs[0] / elapsed:.0f} fdatasyncs/s, "
          f"{counts[0] / max(syncs[0], 1):.1f} commits per fdatasync")


if __name__ == "__main__":
    main()

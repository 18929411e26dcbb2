"""Commit messages forever and print each queue id once commit() returned (killed by the test).

Run as ``python -m tests.queue.crash_writer QUEUE_DIRECTORY``. Every seventh message is
large enough to go through a data file. Four greenlets commit concurrently so that a
kill can land in the middle of a group flush.
"""
from __future__ import annotations

import sys

import gevent

from tests.queue.helpers import message_bytes, opened, queue


def content_for(n: int) -> tuple[str, bytes]:
    tag = f"crash-{n}"
    return tag, message_bytes(tag, 300 << 10 if n % 7 == 0 else 2000)


def committer(store, first: int, step: int) -> None:
    n = first
    while True:
        tag, content = content_for(n)
        qid = queue(store, content)
        sys.stdout.write(f"{qid} {n}\n")
        sys.stdout.flush()
        n += step


def main() -> None:
    store = opened(sys.argv[1], segment_size=256 << 10)
    print("ready", flush=True)
    gevent.joinall([gevent.spawn(committer, store, i, 4) for i in range(4)], raise_error=True)


if __name__ == "__main__":
    main()

"""Each worker's meter in a file, so that one endpoint can sum the workers.

Worker N writes ``$queue_directory/metrics/worker-N.json`` once a second
(write a temporary file, rename it over the old one: a reader never sees half
a file). A worker that starts reads its number's file first and continues
from it (:meth:`Meter.resume`): a restarted worker never makes a total go
backwards; what a crashed worker counted in its last second is lost.
The files need no fsync: after a power loss the totals start again, which
Prometheus treats as a counter reset.
"""
from __future__ import annotations

import json
import logging
import os
import time

import gevent

from relayd.metrics.meter import Meter

log = logging.getLogger("relayd.master")

DIRECTORY = "metrics"
INTERVAL = 1.0   # how often a worker writes its file


def directory(queue_directory: str) -> str:
    """Where the workers' snapshot files are."""
    return os.path.join(queue_directory, DIRECTORY)


def _path(queue_directory: str, worker: int) -> str:
    return os.path.join(directory(queue_directory), f"worker-{worker}.json")


def read(path: str) -> dict | None:
    """One snapshot file; None when missing or unreadable (a torn file after a crash)."""
    try:
        with open(path, "rb") as f:
            snap = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return snap if isinstance(snap, dict) else None


def read_all(queue_directory: str) -> list[dict]:
    """Every worker's snapshot."""
    base = directory(queue_directory)
    try:
        names = sorted(n for n in os.listdir(base) if n.endswith(".json"))
    except OSError:
        return []
    return [s for s in (read(os.path.join(base, n)) for n in names) if s is not None]


def write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class SnapshotWriter:
    """Worker ``worker``'s side: resume from its file, then write it every
    INTERVAL (the JSON is made in the event loop, the file written in the
    threadpool) and once more at :meth:`stop`."""

    def __init__(self, meter: Meter, queue_directory: str, worker: int):
        self.meter = meter
        self.path = _path(queue_directory, worker)
        self._timer = None

    def start(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        previous = read(self.path)
        if previous is not None:
            self.meter.resume(previous)
        self._timer = gevent.get_hub().loop.timer(INTERVAL, INTERVAL)
        self._timer.start(self._write_soon)

    def _write_soon(self) -> None:
        gevent.spawn(self.write)

    def write(self) -> None:
        """Write the meter now."""
        snap = self.meter.snapshot()
        snap["time"], snap["pid"] = time.time(), os.getpid()
        data = json.dumps(snap, separators=(",", ":")).encode()
        try:
            gevent.get_hub().threadpool.apply(write, (self.path, data))
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
            self.write()

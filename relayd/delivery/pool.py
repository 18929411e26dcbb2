"""The delivery pool: runs delivery jobs within Postfix's concurrency limits.

Jobs wait in a queue per destination (next hop). A destination never has
more than its limit of jobs running at once (given with each job: the
transport's destination concurrency limit, :mod:`relayd.delivery.limits`;
``destination_limit`` when none is given) and the whole pool never more
than ``process_limit`` (default_process_limit, 100). A destination with a
rate delay waits that long between its jobs (:class:`~relayd.delivery.limits.RateGate`). A worker greenlet keeps
taking jobs from its destination's queue, so a busy destination does not
spawn a greenlet per message, and :meth:`submit` never blocks the queue
manager. When a worker ends, destinations that waited for a free slot get it.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Callable

import gevent
from gevent.event import Event

from relayd.delivery.limits import RateGate

__all__ = ["DeliveryPool"]

log = logging.getLogger("relayd.qmgr")


class DeliveryPool:
    """Bounded, per-destination-fair execution of delivery jobs."""

    def __init__(self, destination_limit: int, process_limit: int,
                 rate_gate: RateGate | None = None) -> None:
        self.destination_limit = max(1, destination_limit)
        self.process_limit = max(1, process_limit)
        self.rate_gate = rate_gate or RateGate()
        self._queues: dict[str, deque[Callable[[], None]]] = {}
        self._limits: dict[str, tuple[int, float]] = {}   # (concurrency, rate delay)
        self._running: dict[str, int] = {}
        self._workers: set[gevent.Greenlet] = set()
        self._idle = Event()
        self._idle.set()

    def submit(self, destination: str, job: Callable[[], None], limit: int | None = None,
               rate_delay: float = 0.0) -> None:
        """Queue ``job`` (a callable taking no arguments) for ``destination``,
        which runs at most ``limit`` jobs at once, ``rate_delay`` seconds apart."""
        self._queues.setdefault(destination, deque()).append(job)
        self._limits[destination] = (limit or self.destination_limit, rate_delay)
        self._idle.clear()
        self._start_workers()

    @property
    def active(self) -> int:
        """Jobs running now."""
        return sum(self._running.values())

    def running(self) -> dict[str, int]:
        """Jobs running now, by destination."""
        return {d: n for d, n in self._running.items() if n}

    def join(self, timeout: float | None = None) -> bool:
        """Wait until no job is queued or running; True if that happened in time."""
        return self._idle.wait(timeout)

    def kill(self) -> None:
        """Stop every worker now (jobs in progress are interrupted, queued ones dropped)."""
        self._queues.clear()
        self._limits.clear()
        gevent.killall(list(self._workers))

    def _start_workers(self) -> None:
        for destination, jobs in list(self._queues.items()):
            limit = self._limits.get(destination, (self.destination_limit, 0.0))[0]
            while jobs and len(self._workers) < self.process_limit \
                    and self._running.get(destination, 0) < limit:
                self._running[destination] = self._running.get(destination, 0) + 1
                self._workers.add(gevent.spawn(self._work, destination, jobs.popleft()))

    def _work(self, destination: str, job: Callable[[], None]) -> None:
        jobs = self._queues.get(destination)
        delay = self._limits.get(destination, (0, 0.0))[1]
        try:
            while job is not None:
                if delay:
                    gevent.sleep(self.rate_gate.wait(destination, delay))
                try:
                    job()
                except Exception:   # one broken job must not stop the destination
                    log.exception("delivery job for %s failed", destination)
                if delay:
                    self.rate_gate.finished(destination, delay)
                job = jobs.popleft() if jobs else None
        finally:
            self._running[destination] -= 1
            self._workers.discard(gevent.getcurrent())
            if not self._running[destination]:
                del self._running[destination]
                if not self._queues.get(destination):
                    self._queues.pop(destination, None)
                    self._limits.pop(destination, None)
            self._start_workers()
            if not self._workers and not any(self._queues.values()):
                self._idle.set()

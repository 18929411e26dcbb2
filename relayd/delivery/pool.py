"""The delivery pool: runs delivery jobs within Postfix's concurrency limits.

Jobs wait in a queue per destination (next hop). A destination never has
more than ``destination_limit`` jobs running at once
(default_destination_concurrency_limit, 20) and the whole pool never more
than ``process_limit`` (default_process_limit, 100). A worker greenlet keeps
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

__all__ = ["DeliveryPool"]

log = logging.getLogger("relayd.qmgr")


class DeliveryPool:
    """Bounded, per-destination-fair execution of delivery jobs."""

    def __init__(self, destination_limit: int, process_limit: int) -> None:
        self.destination_limit = max(1, destination_limit)
        self.process_limit = max(1, process_limit)
        self._queues: dict[str, deque[Callable[[], None]]] = {}
        self._running: dict[str, int] = {}
        self._workers: set[gevent.Greenlet] = set()
        self._idle = Event()
        self._idle.set()

    def submit(self, destination: str, job: Callable[[], None]) -> None:
        """Queue ``job`` (a callable taking no arguments) for ``destination``."""
        self._queues.setdefault(destination, deque()).append(job)
        self._idle.clear()
        self._start_workers()

    @property
    def active(self) -> int:
        """Jobs running now."""
        return sum(self._running.values())

    def join(self, timeout: float | None = None) -> bool:
        """Wait until no job is queued or running; True if that happened in time."""
        return self._idle.wait(timeout)

    def kill(self) -> None:
        """Stop every worker now (jobs in progress are interrupted, queued ones dropped)."""
        self._queues.clear()
        gevent.killall(list(self._workers))

    def _start_workers(self) -> None:
        for destination, jobs in list(self._queues.items()):
            while jobs and len(self._workers) < self.process_limit \
                    and self._running.get(destination, 0) < self.destination_limit:
                self._running[destination] = self._running.get(destination, 0) + 1
                self._workers.add(gevent.spawn(self._work, destination, jobs.popleft()))

    def _work(self, destination: str, job: Callable[[], None]) -> None:
        jobs = self._queues.get(destination)
        try:
            while job is not None:
                try:
                    job()
                except Exception:   # one broken job must not stop the destination
                    log.exception("delivery job for %s failed", destination)
                job = jobs.popleft() if jobs else None
        finally:
            self._running[destination] -= 1
            self._workers.discard(gevent.getcurrent())
            if not self._running[destination]:
                del self._running[destination]
                if not self._queues.get(destination):
                    self._queues.pop(destination, None)
            self._start_workers()
            if not self._workers and not any(self._queues.values()):
                self._idle.set()

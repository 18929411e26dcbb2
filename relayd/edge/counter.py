"""How many SMTP sessions are open across all worker processes.

smtpd_session_limit is a limit for the whole relay, like Postfix's smtpd
process limit, but sessions live in several worker processes. Each worker
writes its own count into one slot of a small shared memory map that the
master created before forking; a worker adds the slots up when a client
connects. Two workers accepting at the same instant can overshoot the limit
by at most the number of workers.
"""
from __future__ import annotations

import mmap
import struct

_SLOT = struct.Struct("q")


class SessionCounter:
    """Per-worker session counts in shared memory; one slot per worker."""

    def __init__(self, workers: int = 1):
        self.workers = workers
        self._shared = mmap.mmap(-1, _SLOT.size * workers)
        self._slot = 0
        self._count = 0

    def use_slot(self, worker: int) -> None:
        """Count this process's sessions in slot ``worker`` (called in the worker)."""
        self._slot = worker
        self._count = 0
        _SLOT.pack_into(self._shared, worker * _SLOT.size, 0)

    def total(self) -> int:
        """Sessions open in all workers."""
        if self.workers == 1:
            return self._count
        return sum(v for (v,) in _SLOT.iter_unpack(self._shared))

    def add(self, delta: int) -> None:
        self._count += delta
        if self.workers > 1:
            _SLOT.pack_into(self._shared, self._slot * _SLOT.size, self._count)

"""anvil: the session counts behind relayd's connection limits, exact across workers.

Postfix's anvil(8) server counts each client's connections for smtpd;
relayd's counts live in one table of shared memory that the master creates
before it forks the workers, so every worker sees and changes the same
numbers. An update takes an fcntl lock on the table's memfd: the kernel
drops that lock when its holder dies, so a killed worker can never leave the
table locked. The table counts

- the sessions of the whole node (``smtpd_session_limit``), and
- the sessions per service and client address
  (``smtpd_client_connection_count_limit``),

each per worker, so the master can take back a dead worker's share
(:meth:`Anvil.reset_worker`). Checking a limit and counting the new session
happen under one lock: the limits are exact, whichever worker accepts. The
one update without the lock is a worker taking back a session of its own
that only the node counts (an exempt client): each worker's node count is
written by that worker alone (an aligned 8-octet store), and by the master
only once the worker is dead.

A second region counts each (service, client)'s AUTH commands
(``smtpd_client_auth_rate_limit``) as anvil(8) counts its rates: a window
opens at the first command and lasts ``anvil_rate_time_unit``; the next
command after it opens a new one. The region is a cache of fixed size (a
bucket of a few slots per hash): when a bucket is full, the entry whose
window opened first gives way. So the table never grows, and at worst a
client in a crowded bucket starts counting afresh: only a sender from many
addresses can crowd a bucket, and a per-address limit cannot stop one anyway.
The same region keeps, for each delivery destination with a rate delay
(default_destination_rate_delay), when its next delivery may start
(:meth:`Anvil.delivery_slot`), so the delay holds across the workers.

Use from the event loop's thread only (fcntl locks belong to the process, so
they do not exclude threads of one process); the lock is held for a few
microseconds and never across a greenlet switch.
"""
from __future__ import annotations

import hashlib
import mmap
import os
import struct
import time
from fcntl import LOCK_EX, LOCK_UN, lockf
from functools import lru_cache

# connect() verdicts
TOO_MANY_SESSIONS = "sessions"
TOO_MANY_FROM_CLIENT = "client"

_EMPTY = bytes(16)
_WAYS = 4  # AUTH rate slots per bucket


class Anvil:
    """Session counts of one node, shared by its ``workers`` processes.

    ``capacity`` is the most sessions the node counts at once (its
    smtpd_session_limit): the table keeps at least twice as many slots, one
    per distinct (service, client) with sessions open.
    """

    def __init__(self, workers: int = 1, capacity: int = 1000):
        self.workers = workers
        self._slots = 16
        while self._slots < 2 * capacity:
            self._slots *= 2
        self._header = struct.Struct(f"q{workers}q")  # keys in use, sessions per worker
        self._entry = struct.Struct(f"16s{workers}i")  # key, its sessions per worker
        self._rate = struct.Struct("16sid")  # key, AUTH commands, the window's start
        self._rates_at = self._offset(self._slots)
        size = self._rates_at + self._slots * self._rate.size
        self._fd = os.memfd_create("relayd-anvil", os.MFD_CLOEXEC)
        os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        self._locked = _TableLock(self._fd)
        self._worker = 0

    def use_worker(self, worker: int) -> None:
        """Count this process's sessions as worker ``worker``'s (called in the worker)."""
        self._worker = worker

    def connect(self, service: str, client: str | None, session_limit: int,
                client_limit: int) -> tuple[str | None, int]:
        """Count a new session of ``client`` on ``service`` unless a limit forbids it.

        ``client`` None: counted for the node only (no per-client limit, or the
        client is exempt). Returns (None, count) when counted, else the verdict
        (TOO_MANY_SESSIONS or TOO_MANY_FROM_CLIENT) and the count the session
        would have made; :meth:`disconnect` must follow a counted session.
        """
        key = _key(service, client) if client is not None else None
        with self._locked:
            used, *sessions = self._header.unpack_from(self._map, 0)
            total = sum(sessions) + 1
            if total > session_limit:
                return TOO_MANY_SESSIONS, total
            count = 0
            if key is not None:
                slot, counts = self._find(key)
                count = sum(counts) + 1
                if count > client_limit:
                    return TOO_MANY_FROM_CLIENT, count
                if not any(counts):
                    if used >= self._slots // 2:
                        return TOO_MANY_SESSIONS, total  # more clients than capacity
                    self._add(0, 1)
                counts[self._worker] += 1
                self._entry.pack_into(self._map, self._offset(slot), key, *counts)
            self._add(1 + self._worker, 1)
        return None, count

    def disconnect(self, service: str, client: str | None) -> None:
        """A session counted by :meth:`connect` (same arguments) ended."""
        if client is None:
            # A worker's own session count is written by that worker alone (the
            # master rewrites only a dead worker's): no lock for taking one back.
            self._add(1 + self._worker, -1)
            return
        key = _key(service, client)
        with self._locked:
            slot, counts = self._find(key)
            counts[self._worker] -= 1
            if any(counts):
                self._entry.pack_into(self._map, self._offset(slot), key, *counts)
            else:
                self._delete(slot)
                self._add(0, -1)
            self._add(1 + self._worker, -1)

    def auth(self, service: str, client: str, time_unit: float) -> int:
        """Count an AUTH command of ``client`` on ``service``; returns the client's
        AUTH commands in the current window, this one included. As anvil's
        request=auth: a window opens at the client's first AUTH, and the first AUTH
        more than ``time_unit`` seconds after that opens the next one."""
        key = _key(service, client)
        now = time.monotonic()   # CLOCK_MONOTONIC: one clock for all the workers
        with self._locked:
            at = self._rate_slot(key)
            found, count, start = self._rate.unpack_from(self._map, at)
            if found != key or start + time_unit < now:
                count, start = 0, now
            count = min(count + 1, 2**31 - 1)
            self._rate.pack_into(self._map, at, key, count, start)
        return count

    def delivery_slot(self, destination: str, delay: float, *, finished: bool) -> float:
        """The rate delay of ``destination`` (relayd.delivery.limits.RateGate), in
        the AUTH rates' region: the entry's time is when the destination's next
        delivery may start. ``finished=False`` claims that start and returns the
        seconds to wait for it; ``finished=True`` (a delivery ended) moves it to
        ``delay`` from now at the earliest. An entry holds a future time, so the
        region gives way to it last."""
        key = _key("delivery-rate", destination)
        now = time.monotonic()
        with self._locked:
            at = self._rate_slot(key)
            found, _, next_start = self._rate.unpack_from(self._map, at)
            start = max(now, next_start) if found == key else now
            self._rate.pack_into(self._map, at, key, 0,
                                 max(start, now + delay) if finished else start + delay)
        return 0.0 if finished else start - now

    def sessions(self) -> int:
        """Sessions open on the node."""
        return sum(self._header.unpack_from(self._map, 0)[1:])

    def client_sessions(self, service: str, client: str) -> int:
        """Sessions ``client`` has open on ``service`` (counted ones)."""
        with self._locked:
            return sum(self._find(_key(service, client))[1])

    def reset_worker(self, worker: int) -> None:
        """Forget the sessions of ``worker``, a process that is gone (called by
        the master). Also rebuilds the table, so that one left half-updated by
        a process killed inside :meth:`connect` is whole again."""
        with self._locked:
            entries = {}
            for slot in range(self._slots):
                key, *counts = self._entry.unpack_from(self._map, self._offset(slot))
                counts[worker] = 0
                if key != _EMPTY and any(counts):
                    entries.setdefault(key, counts)
            # The entries are rebuilt; of the header only the keys in use and the dead
            # worker's count are written (each live worker writes its own, see disconnect).
            self._map[self._header.size:self._rates_at] = bytes(self._rates_at - self._header.size)
            struct.pack_into("q", self._map, 0, len(entries))
            struct.pack_into("q", self._map, 8 * (1 + worker), 0)
            for key, counts in entries.items():
                slot, _ = self._find(key)
                self._entry.pack_into(self._map, self._offset(slot), key, *counts)

    def _offset(self, slot: int) -> int:
        return self._header.size + slot * self._entry.size

    def _add(self, field: int, delta: int) -> None:
        """Add ``delta`` to header field ``field`` (0: keys in use, 1 + N: worker N's sessions)."""
        (value,) = struct.unpack_from("q", self._map, field * 8)
        struct.pack_into("q", self._map, field * 8, value + delta)

    def _rate_slot(self, key: bytes) -> int:
        """The offset of ``key``'s AUTH rate in its bucket; for a key not there, the
        bucket's empty slot or the one whose window opened first (see the module doc)."""
        first = (int.from_bytes(key[:8], "little") & (self._slots - 1)) // _WAYS * _WAYS
        best, oldest = 0, float("inf")
        for slot in range(first, first + _WAYS):
            at = self._rates_at + slot * self._rate.size
            found, _, start = self._rate.unpack_from(self._map, at)
            if found == key:
                return at
            if start < oldest:   # an empty slot's start is 0.0: taken first
                best, oldest = at, start
        return best

    def _find(self, key: bytes) -> tuple[int, list[int]]:
        """The slot of ``key`` (linear probing) and its counts; for a key not in
        the table, the empty slot where it goes and zero counts."""
        mask = self._slots - 1
        slot = int.from_bytes(key[:8], "little") & mask
        while True:
            found, *counts = self._entry.unpack_from(self._map, self._offset(slot))
            if found == key:
                return slot, counts
            if found == _EMPTY:
                return slot, [0] * self.workers
            slot = (slot + 1) & mask

    def _delete(self, slot: int) -> None:
        """Empty ``slot``, moving later entries of its probe run back into the hole
        (Knuth's algorithm R), so lookups never need tombstones."""
        mask = self._slots - 1
        size = self._entry.size
        hole, probe = slot, slot
        while True:
            probe = (probe + 1) & mask
            at = self._offset(probe)
            key = bytes(self._map[at:at + 16])
            if key == _EMPTY:
                break
            home = int.from_bytes(key[:8], "little") & mask
            # Move it unless its home lies cyclically in (hole, probe].
            if (hole < probe and (home <= hole or home > probe)) or \
                    (hole > probe and home <= hole and home > probe):
                self._map[self._offset(hole):self._offset(hole) + size] = self._map[at:at + size]
                hole = probe
        self._map[self._offset(hole):self._offset(hole) + size] = bytes(size)


@lru_cache(maxsize=4096)
def _key(service: str, client: str) -> bytes:
    """A fixed-size table key for (service, client), as anvil's "service:addr"."""
    return hashlib.blake2b(f"{service}:{client}".encode(), digest_size=16).digest()


class _TableLock:
    """The fcntl lock on the table's memfd, as a context manager."""

    __slots__ = ("fd",)

    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self) -> None:
        lockf(self.fd, LOCK_EX)

    def __exit__(self, *exc) -> None:
        lockf(self.fd, LOCK_UN)

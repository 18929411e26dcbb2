"""Group commit: many greenlets' records, one write and one fdatasync.

Callers :meth:`GroupCommitter.submit` records into the open batch and wait
on it. A single committer greenlet takes the open batch, writes it with one
call of the store's write function (which runs the disk work in the
threadpool) and wakes every waiter at once. Records submitted while a write
is running form the next batch, so the batch grows with the load: under
pressure one fdatasync covers many messages, when idle a message waits for
only its own.

A failed write fails every waiter of that batch with QueueWriteError.
Records submitted with ``retry=True`` (delivery results, queue operations:
the views already show them) go back at the front of the next batch and are
written again later, so the journal and the views converge once the disk
recovers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import gevent
from gevent.event import AsyncResult, Event

log = logging.getLogger("relayd.queue")


class QueueWriteError(Exception):
    """The queue could not make a record durable; the client gets 451 4.3.0."""


@dataclass
class Entry:
    """One submission: the buffers of one or more framed records."""

    buffers: list[bytes]
    on_durable: Callable[[int, int], None] | None = None   # (segment, offset) once written
    retry: bool = False
    syncs_data_dir: bool = False                            # refers to a new file in data/
    size: int = 0

    def __post_init__(self):
        self.size = sum(len(b) for b in self.buffers)


@dataclass
class _Batch:
    entries: list[Entry] = field(default_factory=list)
    done: AsyncResult = field(default_factory=AsyncResult)


# write(buffers, total_size, sync_data_dir) -> (segment, start offset); raises OSError.
WriteFn = Callable[[list[bytes], int, bool], tuple[int, int]]


class GroupCommitter:
    """Owns the committer greenlet and the open batch."""

    def __init__(self, write: WriteFn, after_flush: Callable[[], None], *, retry_delay: float = 1.0):
        self._write = write
        self._after_flush = after_flush
        self._retry_delay = retry_delay
        self._open = _Batch()
        self._running: _Batch | None = None
        self._wakeup = Event()
        self._stopping = False
        self._greenlet = gevent.spawn(self._run)

    def submit(self, entry: Entry) -> AsyncResult:
        """Add ``entry`` to the open batch; ``.get()`` on the result waits until it is durable."""
        if self._greenlet.dead:   # while stopping, the committer still drains what comes in
            raise QueueWriteError("queue is closed")
        self._open.entries.append(entry)
        self._wakeup.set()
        return self._open.done

    def flush(self) -> None:
        """Wait until everything submitted so far is durable (QueueWriteError if it failed)."""
        batch = self._open if self._open.entries else self._running
        if batch is not None:
            batch.done.get()

    def stop(self) -> None:
        """Write what is left, then end the committer greenlet."""
        self._stopping = True
        self._wakeup.set()
        self._greenlet.join()

    def _run(self) -> None:
        while True:
            self._wakeup.wait()
            self._wakeup.clear()
            if not self._open.entries:
                if self._stopping:
                    return
                continue
            batch, self._open = self._open, _Batch()
            self._running = batch
            failed = self._write_batch(batch)
            self._running = None
            if failed and self._stopping:
                left, self._open = self._open, _Batch()
                left.done.set_exception(QueueWriteError("queue closed after a write error"))
                return
            if failed:
                gevent.sleep(self._retry_delay)   # let the disk recover before trying again
            self._wakeup.set()

    def _write_batch(self, batch: _Batch) -> bool:
        """Write one batch and wake its waiters; True when the write failed."""
        buffers = [b for e in batch.entries for b in e.buffers]
        total = sum(e.size for e in batch.entries)
        try:
            segment, offset = self._write(buffers, total, any(e.syncs_data_dir for e in batch.entries))
        except Exception as exc:  # noqa: BLE001 - every waiter must hear of any failure
            log.error("queue file write error: %s", exc)
            kept = [e for e in batch.entries if e.retry]
            self._open.entries[:0] = kept
            batch.done.set_exception(QueueWriteError(str(exc)))
            return True
        for entry in batch.entries:
            if entry.on_durable is not None:
                try:
                    entry.on_durable(segment, offset)
                except Exception:  # noqa: BLE001 - the records are durable whatever this did
                    log.exception("queue bookkeeping failed")
            offset += entry.size
        batch.done.set(None)
        try:
            self._after_flush()
        except Exception:  # noqa: BLE001 - cleanup is retried after the next flush
            log.exception("queue cleanup failed")
        return False

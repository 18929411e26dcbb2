"""The durable queue store: a group-committed journal plus views in memory.

``<queue_directory>/journal/`` holds segment files of records (see
docs/queue-format.md), ``data/`` the content of large messages, ``corrupt/``
damaged bytes set aside at start. :meth:`QueueStore.commit` returns only when
the message is on disk and fdatasync'ed: that is when the client may hear
250. Delivery results and queue operations are journaled the same way; the
in-memory views (incoming, active, deferred, hold, corrupt) are rebuilt from
the journal alone at :meth:`QueueStore.open`.

Segments are deleted from the oldest end once no live message has its
newest MESSAGE record in them. An old segment that still holds a few live
messages (long-deferred ones) is compacted: their current state is written
again as snapshot MESSAGE records into the current segment, after which
the old segment is no longer needed.
"""
from __future__ import annotations

import logging
import os
import time

from gevent.lock import Semaphore

from relayd.queue import journal, records
from relayd.queue.committer import Entry, GroupCommitter, QueueWriteError
from relayd.queue.content import ContentWriter
from relayd.queue.envelope import Envelope
from relayd.queue.lock import DirectoryLock, QueueLocked
from relayd.queue.offload import blocking
from relayd.queue.outcome import Outcome
from relayd.queue.qid import QueueIdGenerator
from relayd.queue.recovery import recover
from relayd.queue.state import (ACTIVE, CORRUPT, DEFERRED_Q, HOLD, INCOMING, Location,
                                 QueuedMessage, QueueState)

__all__ = ["QueueStore", "QueueWriteError", "QueueLocked", "QueuedMessage", "ContentWriter"]

log = logging.getLogger("relayd.queue")

_OPS = {"hold": (records.HOLD, "placed on hold"), "release": (records.RELEASE, "released from hold"),
        "delete": (records.DELETE, "removed"), "requeue": (records.REQUEUE, "requeued")}
COMPACT_LIVE_FRACTION = 4   # compact an old segment once its live records fill at most 1/4 of a segment
SPACE_CHECK_INTERVAL = 1.0  # seconds a free-space reading is reused: statvfs not once per message
SPACE_MULTIPLIER = 1.5      # Postfix's smtpd_check_queue: room for 1.5 x message_size_limit


class QueueStore:
    """One queue directory: commit, look up, change state, read content."""

    def __init__(self, directory: str, *, fsync: bool = True, segment_size: int = 64 << 20,
                 inline_limit: int = 256 << 10, compact_after: float = 300.0,
                 retry_delay: float = 1.0, content_cache_size: int = 32 << 20,
                 queue_ids: QueueIdGenerator | None = None, min_free: int = 0,
                 message_size_limit: int = 0):
        self.directory = directory
        self.fsync = fsync
        self.segment_size = segment_size
        self.inline_limit = inline_limit
        self.compact_after = compact_after   # seconds a segment stays sealed before compaction
        self.retry_delay = retry_delay       # pause after a failed flush before writing again
        self.on_commit = None                # callable(qid) after a message became durable
        self.min_free = min_free             # queue_minfree
        self.message_size_limit = message_size_limit
        self._space = (0.0, 1, 0)            # (monotonic time read, block size, blocks available)
        self._journal_dir = os.path.join(directory, "journal")
        self._data_dir = os.path.join(directory, "data")
        self._state = QueueState()
        self._lock = DirectoryLock(directory)
        # One generator per process, shared by every store it opens, keeps ids unique.
        self._qids = queue_ids or QueueIdGenerator()
        self._writer = journal.SegmentWriter(self._journal_dir, fsync=fsync)
        self._segments: dict[int, float] = {}   # segment -> monotonic time it was sealed (0: current)
        self._compacting: set[int] = set()
        self._garbage_files: list[str] = []
        self._gc_lock = Semaphore()
        self._committer: GroupCommitter | None = None
        # Content of just-committed small messages, kept until their first delivery
        # attempt reads it: saves reading back from the journal on the hot path.
        self._recent: dict[str, bytes] = {}
        self._recent_bytes = 0
        self.content_cache_size = content_cache_size

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the directory, create its subdirectories, recover the journal and
        rebuild the views; QueueLocked when another process owns this queue."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self._lock.acquire()   # before recovery: it removes files no message of ours refers to
        try:
            self._open_locked()
        except BaseException:
            self._lock.release()
            raise

    def _open_locked(self) -> None:
        for sub in ("journal", "data", "corrupt"):
            os.makedirs(os.path.join(self.directory, sub), mode=0o700, exist_ok=True)
        kept = recover(self.directory, self._state, self._qids)
        now = time.monotonic()
        self._segments = {n: now for n in kept}
        last = kept[-1] if kept else 0
        if not (kept and blocking(os.path.getsize, self._segment_path(last)) < self.segment_size
                and blocking(self._writer.open_existing, last)):
            blocking(self._writer.rotate, last + 1)
        self._segments[self._writer.number] = 0.0
        self._committer = GroupCommitter(self._write_batch, self._after_flush,
                                         retry_delay=self.retry_delay)
        self._collect()

    def close(self) -> None:
        """Write what is pending, stop the committer, close the files."""
        if self._committer is None:
            return
        try:
            self._committer.flush()
        except QueueWriteError as exc:
            log.error("queue closed with unwritten records: %s", exc)
        self._committer.stop()
        self._collect()
        blocking(self._writer.close)
        self._committer = None
        self._lock.release()

    def flush(self) -> None:
        """Wait until every record so far is durable; QueueWriteError if that failed."""
        self._committer.flush()

    # -- accepting mail ----------------------------------------------------------------------

    def new_queue_id(self) -> str:
        """A Postfix-like queue id (12 uppercase hex digits), unique across restarts."""
        return self._qids.next()

    def has_room(self) -> bool:
        """Whether the queue file system can take a new message (asked at MAIL FROM).

        Postfix's smtpd_check_queue: no when the free space is at most
        ``queue_minfree`` or less than 1.5 x ``message_size_limit`` (the
        session answers 452 4.3.1). The reading is reused for a second, so a
        busy relay makes one statvfs a second, in the threadpool."""
        read_at, block, free = self._space
        if time.monotonic() - read_at >= SPACE_CHECK_INTERVAL:
            st = blocking(os.statvfs, self.directory)
            block, free = st.f_frsize or st.f_bsize, st.f_bavail
            self._space = (time.monotonic(), block, free)
        if (self.min_free // block >= free
                or self.message_size_limit // block >= free / SPACE_MULTIPLIER):
            log.warning("not enough free space in mail queue: %d bytes < %g*message size limit",
                        free * block, SPACE_MULTIPLIER)
            return False
        return True

    def content_writer(self, queue_id: str) -> ContentWriter:
        """A writer for the content of ``queue_id``, fed during DATA."""
        return ContentWriter(queue_id, self._data_dir, inline_limit=self.inline_limit, fsync=self.fsync)

    def commit(self, queue_id: str, envelope: Envelope, content: ContentWriter, *,
               hold: bool = False) -> None:
        """Make the message durable, then show it as "incoming" (or "hold", never
        delivered until released); QueueWriteError on failure."""
        try:
            chunks = content.finish()
        except OSError as exc:
            content.abort()
            raise QueueWriteError(f"{queue_id}: data file: {exc}") from exc
        size = content.size
        state = HOLD if hold else INCOMING
        buffers = records.encode_message(queue_id, state, 0, 0.0, "", envelope.to_json(), chunks, size,
                                         sync=self._writer.sync)
        framed = sum(len(b) for b in buffers)

        def durable(segment: int, offset: int) -> None:
            content_at = offset + framed - size if chunks is not None else -1
            msg = QueuedMessage(queue_id, envelope, state)
            self._state.apply_message(msg, Location(segment, framed, content_at, size))

        done = self._committer.submit(Entry(buffers, durable, syncs_data_dir=chunks is None))
        try:
            done.get()
        except QueueWriteError:
            content.abort()
            raise
        if chunks is not None and self._recent_bytes + size <= self.content_cache_size:
            self._recent[queue_id] = b"".join(chunks)
            self._recent_bytes += size
        if self.on_commit is not None:
            try:
                self.on_commit(queue_id)
            except Exception:  # noqa: BLE001 - a wake-up hook must not undo a durable commit
                log.exception("%s: on_commit hook failed", queue_id)

    # -- views -------------------------------------------------------------------------------

    def get(self, queue_id: str) -> QueuedMessage | None:
        """The message with this id, or None when it is not (or no longer) queued."""
        return self._state.messages.get(queue_id)

    def count(self) -> int:
        """How many messages are queued (without listing them)."""
        return len(self._state.messages)

    def unordered(self) -> list[QueuedMessage]:
        """Every queued message, in no order (cheaper than :meth:`messages`)."""
        return list(self._state.messages.values())

    def messages(self, state: str | None = None) -> list[QueuedMessage]:
        """Messages in ``state`` (all when None), oldest first."""
        return self._state.views(state)

    def due(self, now: float) -> list[QueuedMessage]:
        """Incoming messages, then deferred ones whose time has come, oldest first.

        Each due message is handed out once: the caller activates it
        (mark_active). Cost follows the number of due messages, not the queue size.
        """
        return self._state.take_due(now)

    def next_due(self) -> float | None:
        """The time the earliest deferred message becomes due, or None."""
        return self._state.next_due()

    def read_content(self, queue_id: str) -> bytes:
        """The message content exactly as committed (KeyError if not queued)."""
        cached = self._uncache(queue_id)
        if cached is not None and queue_id in self._state.messages:
            return cached
        for _ in range(2):   # a compaction may move the content between lookup and read
            where = self._state.locations.get(queue_id)
            if where is None or queue_id not in self._state.messages:
                raise KeyError(queue_id)
            try:
                if where.content_offset < 0:
                    return blocking(journal.read_file, os.path.join(self._data_dir, queue_id))
                return blocking(journal.read_at, self._segment_path(where.segment),
                                where.content_offset, where.content_size)
            except FileNotFoundError:
                continue
        raise KeyError(queue_id)

    def _uncache(self, queue_id: str) -> bytes | None:
        data = self._recent.pop(queue_id, None)
        if data is not None:
            self._recent_bytes -= len(data)
        return data

    # -- delivery results and queue operations -----------------------------------------------

    def mark_active(self, queue_id: str) -> None:
        """Move an incoming or deferred message to the active queue (memory only)."""
        msg = self._state.messages.get(queue_id)
        if msg is not None and msg.state in (INCOMING, DEFERRED_Q):
            msg.state = ACTIVE

    def record_results(self, queue_id: str, delivered: list[int], bounced: list[int],
                       deferred: list[int], outcomes: dict[int, Outcome],
                       next_attempt: float | None) -> None:
        """Journal one delivery attempt's outcomes (by recipient index); the message
        leaves the queue when no recipient is left.

        Does not wait for the disk (see :meth:`flush`); a failed write is retried.
        """
        msg = self._state.messages.get(queue_id)
        if msg is None or msg.state == CORRUPT:   # deleted meanwhile, or never deliverable
            return
        buffers: list[bytes] = []
        for status, indexes in (("delivered", delivered), ("bounced", bounced)):
            if indexes:
                rec = records.DoneRecord(queue_id, status, tuple((i, outcomes.get(i)) for i in indexes))
                buffers += records.encode_done(queue_id, status, rec.outcomes, sync=self._writer.sync)
                self._state.apply_done(rec)
        finished = queue_id not in self._state.messages
        if not finished:
            when = time.time() if next_attempt is None else next_attempt
            rec = records.DeferredRecord(queue_id, when, tuple((i, outcomes.get(i)) for i in deferred))
            buffers += records.encode_deferred(queue_id, when, rec.outcomes, sync=self._writer.sync)
            self._state.apply_deferred(rec)
        self._committer.submit(Entry(buffers, self._finished(queue_id) if finished else None, retry=True))

    def hold(self, queue_id: str) -> bool:
        """Put a message on hold (postsuper -h); False if it is not queued or already held."""
        return self._queue_op("hold", queue_id)

    def release(self, queue_id: str) -> bool:
        """Release a held message (postsuper -H); False if it is not on hold."""
        return self._queue_op("release", queue_id)

    def delete(self, queue_id: str) -> bool:
        """Remove a message from the queue (postsuper -d); False if it is not queued."""
        return self._queue_op("delete", queue_id)

    def requeue(self, queue_id: str) -> bool:
        """Make a deferred (or incoming) message due now (postsuper -r, postqueue -i)."""
        return self._queue_op("requeue", queue_id)

    def _queue_op(self, op: str, queue_id: str) -> bool:
        """Apply and journal an operation; waits until durable (the change stays if that fails)."""
        kind, logged = _OPS[op]
        if not self._state.apply_op(kind, queue_id):
            return False
        log.info("%s: %s", queue_id, logged)
        on_durable = self._finished(queue_id) if kind == records.DELETE else None
        self._committer.submit(Entry(records.encode_queue_op(kind, queue_id, sync=self._writer.sync), on_durable,
                                     retry=True)).get()
        return True

    def _finished(self, queue_id: str):
        """on_durable for a message that left the queue: release its segment and data file."""
        self._uncache(queue_id)

        def durable(_segment: int, _offset: int) -> None:
            where = self._state.forget_home(queue_id)
            if where is not None and where.content_offset < 0:
                self._garbage_files.append(os.path.join(self._data_dir, queue_id))
        return durable

    # -- writing, segment deletion and compaction --------------------------------------------

    def _segment_path(self, number: int) -> str:
        return os.path.join(self._journal_dir, journal.segment_name(number))

    def _write_batch(self, buffers: list[bytes], total: int, sync_data_dir: bool) -> tuple[int, int]:
        """The committer's write: rotate if the batch does not fit, append, sync (threadpool)."""
        writer = self._writer
        if writer.size > records.SEGMENT_HEADER.size and writer.size + total > self.segment_size:
            sealed = writer.number
            blocking(writer.rotate, sealed + 1)
            self._segments[sealed] = time.monotonic()
            self._segments[writer.number] = 0.0
        if sync_data_dir and self.fsync:
            blocking(journal.fsync_dir, self._data_dir)
        return writer.number, blocking(writer.append, buffers)

    def _after_flush(self) -> None:
        self._collect()
        self._compact_oldest()

    def _collect(self) -> None:
        """Delete finished messages' data files and segments nothing needs any more."""
        with self._gc_lock:
            files, self._garbage_files = self._garbage_files, []
            dead = []
            for number in sorted(self._segments):
                if number == self._writer.number or self._state.live_in(number):
                    break   # only from the oldest end: newer segments may finish older messages
                dead.append(number)
            if files or dead:
                blocking(self._remove, files, dead)
            for number in dead:
                del self._segments[number]
                self._state.segment_live.pop(number, None)
                self._compacting.discard(number)

    def _remove(self, files: list[str], segments: list[int]) -> None:
        for path in files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        for number in segments:
            journal.delete_segment(self._journal_dir, number, fsync=self.fsync)

    def _compact_oldest(self) -> None:
        """Compact the oldest sealed segment once it holds only a few, long-waiting messages."""
        sealed = sorted(n for n, t in self._segments.items() if t)
        if not sealed or sealed[0] in self._compacting:
            return
        number = sealed[0]
        live_bytes = sum(self._state.live_in(number).values())
        old_enough = time.monotonic() - self._segments[number] >= self.compact_after
        if old_enough and live_bytes <= self.segment_size // COMPACT_LIVE_FRACTION:
            self._snapshot_segment(number)

    def compact(self) -> None:
        """Compact every sealed segment now and delete what is no longer needed."""
        for number in sorted(n for n, t in self._segments.items() if t):
            if number not in self._compacting:
                self._snapshot_segment(number)
        self.flush()
        self._collect()

    def _snapshot_segment(self, number: int) -> None:
        """Write the live messages of ``number`` again into the current segment."""
        self._compacting.add(number)
        for queue_id in list(self._state.live_in(number)):
            where = self._state.locations.get(queue_id)
            inline = None
            if where is not None and where.content_offset >= 0:
                inline = blocking(journal.read_at, self._segment_path(number),
                                  where.content_offset, where.content_size)
            msg = self._state.messages.get(queue_id)   # looked up after the read: it may have left
            if msg is None or where is None or self._state.locations.get(queue_id) is not where:
                continue
            self._committer.submit(self._snapshot_entry(msg, where, inline))

    def _snapshot_entry(self, msg: QueuedMessage, where: Location, inline: bytes | None) -> Entry:
        state = INCOMING if msg.state == ACTIVE else msg.state
        buffers = records.encode_message(msg.queue_id, state, msg.attempts, msg.next_attempt,
                                         msg.last_reason, msg.envelope.to_json(),
                                         None if inline is None else [inline], where.content_size,
                                         sync=self._writer.sync)
        framed = sum(len(b) for b in buffers)

        def durable(segment: int, offset: int) -> None:
            if self._state.locations.get(msg.queue_id) is where:   # still live, not moved meanwhile
                content_at = -1 if inline is None else offset + framed - len(inline)
                self._state.move_home(msg.queue_id, Location(segment, framed, content_at,
                                                             where.content_size))
        return Entry(buffers, durable, retry=True)


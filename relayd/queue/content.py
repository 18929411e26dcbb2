"""Message content on its way into the queue, streamed during DATA.

Small messages stay in memory and go inline into the journal record. Past
``inline_limit`` the content spills to ``<queue_directory>/data/<qid>``; the
MESSAGE record then refers to that file. Writes to the file run in the
threadpool and are batched so that one DATA line is not one system call.

A session can be killed (deadline, stop) while a threadpool thread still
writes its file: the greenlet stops waiting, the thread does not stop. So
the writer remembers the job in flight, and closing the file descriptor is
ordered after it: closing it sooner would let the thread write into
whatever file the kernel gives that descriptor number next.

Every byte written goes through :class:`relayd.smtp.wireform.StoredForm`, so every
path into the queue (SMTP sessions, forwarded copies, DSNs) meets the
stored-form invariant: content that would not be one DATA transmission is
never committed (``finish`` raises :class:`StoredFormError`). Client bytes
the DATA reader already found clean with the same check come marked
``checked``: only their junctions with their neighbours are looked at, so a
message's bytes are scanned once on their way in, not twice.
"""
from __future__ import annotations

import logging
import os

import gevent

from relayd.smtp.wireform import StoredForm

log = logging.getLogger("relayd.queue")
cleanup_log = logging.getLogger("relayd.cleanup")

SPILL_CHUNK = 256 << 10    # bytes gathered in memory between two writes to a spilled file


def _write_chunks(fd: int, chunks: list[bytes]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]


def _finish_file(fd: int, chunks: list[bytes], sync: bool) -> None:
    try:
        _write_chunks(fd, chunks)
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _discard(fd: int, path: str) -> None:
    """Close the data file (when ``fd`` >= 0) and remove it."""
    if fd >= 0:
        os.close(fd)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class StoredFormError(OSError):
    """The content failed the stored-form invariant. It is an OSError so that
    the commit refuses the message as it refuses any content it cannot write
    (451 4.3.0 "queue file write error", as cleanup(8) answers a write error)."""


class ContentWriter:
    """Collects one message's content: ``write(bytes)``, ``size``, ``abort()``.

    The store's ``commit()`` finishes it; a writer that is never committed
    must be aborted, which removes its data file.
    """

    def __init__(self, queue_id: str, data_dir: str, *, inline_limit: int, fsync: bool):
        self.queue_id = queue_id
        self.path = os.path.join(data_dir, queue_id)
        self.size = 0
        self._inline_limit = inline_limit
        self._fsync = fsync
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._fd = -1
        self._in_file = False
        self._closed = False
        self._job = None          # the threadpool call on the data file in flight, if any
        self._error: OSError | None = None   # a failed write (disk full): reported by finish()
        self._form = StoredForm()

    @property
    def spilled(self) -> bool:
        """True when the content lives in a data file rather than in memory."""
        return self._in_file

    def write(self, data: bytes, checked: bool = False) -> None:
        """Append content bytes exactly as they will be delivered (``checked``:
        bytes the DATA reader found clean, see
        :meth:`~relayd.smtp.wireform.StoredForm.feed`).

        A failed write to the data file (ENOSPC...) is not raised here: the
        rest of the content is read and dropped, and finish() raises it, so
        the client hears 451 at the end of DATA instead of losing its session."""
        if self._closed:
            raise ValueError(f"{self.queue_id}: content writer already finished")
        if not data or self._error is not None or not self._form.feed(data, checked):
            return   # a failed write, or content that will be refused: nothing more is kept
        self._chunks.append(bytes(data))
        self.size += len(data)
        self._buffered += len(data)
        try:
            if self._fd < 0 and self.size > self._inline_limit:
                self._in_file = True
                self._fd = self._run(os.open, self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                     0o600)
                self._drain()
            elif self._fd >= 0 and self._buffered >= SPILL_CHUNK:
                self._drain()
        except OSError as exc:
            self._error = exc
            self._chunks, self._buffered = [], 0

    def _take(self) -> list[bytes]:
        """The content gathered since the last call."""
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        return chunks

    def _drain(self) -> None:
        self._run(_write_chunks, self._fd, self._take())

    def _run(self, fn, *args):
        """``fn(*args)`` in the threadpool, remembered until it returns (see abort)."""
        self._job = gevent.get_hub().threadpool.spawn(fn, *args)
        result = self._job.get()
        self._job = None
        return result

    def finish(self) -> list[bytes] | None:
        """Close the writer: the inline chunks, or None when the data file is complete
        and durable. StoredFormError when the content fails the invariant."""
        self._closed = True
        if self._error is not None:
            raise self._error
        chunks = self._take()
        problem = self._form.finish()
        if problem is not None:
            cleanup_log.warning("%s: message refused: its stored form is not one DATA "
                                "transmission: %s", self.queue_id, problem)
            raise StoredFormError(f"stored form check failed: {problem}")
        if self._fd < 0:
            return chunks
        fd, self._fd = self._fd, -1
        self._run(_finish_file, fd, chunks, self._fsync)
        return None

    def abort(self) -> None:
        """Drop the content and remove its data file, if any (safe to call more than once).

        When the greenlet was interrupted while a thread still uses the file,
        the file is closed and removed once that thread is done with it."""
        self._closed = True
        self._chunks = []
        fd, self._fd = self._fd, -1
        job, self._job = self._job, None
        if not self._in_file:
            return
        self._in_file = False
        if job is not None and not job.ready():
            job.rawlink(lambda done: gevent.spawn(_discard_after, done, fd, self.path))
            return
        self._run(_discard, fd, self.path)


def _discard_after(job, fd: int, path: str) -> None:
    """Close and remove a data file once the threadpool job using it has ended."""
    if fd < 0 and job.successful() and isinstance(job.value, int):
        fd = job.value    # the job was the os.open: its descriptor was never handed over
    try:
        gevent.get_hub().threadpool.apply(_discard, (fd, path))
    except OSError as exc:
        log.warning("%s: cannot remove data file: %s", os.path.basename(path), exc)

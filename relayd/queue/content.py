"""Message content on its way into the queue, streamed during DATA.

Small messages stay in memory and go inline into the journal record. Past
``inline_limit`` the content spills to ``<queue_directory>/data/<qid>``; the
MESSAGE record then refers to that file. Writes to the file run in the
threadpool and are batched so that one DATA line is not one system call.

Every byte written goes through :class:`relayd.cleanup.StoredForm`, so every
path into the queue (SMTP sessions, forwarded copies, DSNs) meets the
stored-form invariant: content that would not be one DATA transmission is
never committed (``finish`` raises :class:`StoredFormError`).
"""
from __future__ import annotations

import logging
import os

from relayd.cleanup import StoredForm
from relayd.queue.offload import blocking

log = logging.getLogger("relayd.cleanup")

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


def _remove(path: str) -> None:
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
        self._form = StoredForm()

    @property
    def spilled(self) -> bool:
        """True when the content lives in a data file rather than in memory."""
        return self._in_file

    def write(self, data: bytes) -> None:
        """Append content bytes exactly as they will be delivered."""
        if self._closed:
            raise ValueError(f"{self.queue_id}: content writer already finished")
        if not data or not self._form.feed(data):
            return   # nothing more is kept of content that will be refused
        self._chunks.append(bytes(data))
        self.size += len(data)
        self._buffered += len(data)
        if self._fd < 0 and self.size > self._inline_limit:
            self._fd = blocking(os.open, self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._in_file = True
            self._drain()
        elif self._fd >= 0 and self._buffered >= SPILL_CHUNK:
            self._drain()

    def _drain(self) -> None:
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        blocking(_write_chunks, self._fd, chunks)

    def finish(self) -> list[bytes] | None:
        """Close the writer: the inline chunks, or None when the data file is complete
        and durable. StoredFormError when the content fails the invariant."""
        self._closed = True
        problem = self._form.finish()
        if problem is not None:
            log.warning("%s: message refused: its stored form is not one DATA transmission: %s",
                        self.queue_id, problem)
            raise StoredFormError(f"stored form check failed: {problem}")
        if self._fd < 0:
            return self._chunks
        fd, chunks, self._fd, self._chunks = self._fd, self._chunks, -1, []
        blocking(_finish_file, fd, chunks, self._fsync)
        return None

    def abort(self) -> None:
        """Drop the content and remove its data file, if any (safe to call more than once)."""
        self._closed = True
        self._chunks = []
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            blocking(os.close, fd)
        if self._in_file:
            blocking(_remove, self.path)

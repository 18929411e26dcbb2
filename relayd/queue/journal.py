"""Segment files on disk: scanning with torn-tail recovery, appending, deleting.

Everything here is plain blocking file I/O; the store runs it in gevent's
threadpool so that the event loop never waits for the disk. Format details
live in :mod:`relayd.queue.records` and docs/queue-format.md.
"""
from __future__ import annotations

import logging
import mmap
import os
import time
from dataclasses import dataclass

from relayd.queue import records

log = logging.getLogger("relayd.queue")

SEGMENT_SUFFIX = ".seg"
IOV_MAX = 1024


class UnsupportedJournal(Exception):
    """A segment written by a format version this relayd cannot read: never guess, never cut."""


@dataclass(frozen=True)
class ScannedRecord:
    """One intact record found by :func:`scan_segment`."""

    offset: int           # file offset of the record header
    size: int             # framed size
    kind: int
    record: object        # a records.*Record


def segment_name(number: int) -> str:
    return f"{number:08d}{SEGMENT_SUFFIX}"


def list_segments(journal_dir: str) -> list[int]:
    """Segment numbers present in ``journal_dir``, oldest first."""
    found = []
    for name in os.listdir(journal_dir):
        stem, _, ext = name.partition(".")
        if "." + ext == SEGMENT_SUFFIX and stem.isdigit():
            found.append(int(stem))
    return sorted(found)


def fsync_dir(path: str) -> None:
    """Make renames, creations and unlinks in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_aside(data: bytes, corrupt_dir: str, name: str) -> str:
    """Keep damaged bytes in ``corrupt_dir`` for the postmaster; returns the path."""
    path = os.path.join(corrupt_dir, name)
    if os.path.exists(path):
        path += f".{time.time_ns()}"
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(corrupt_dir)
    return path


def scan_segment(path: str, corrupt_dir: str) -> list[ScannedRecord] | None:
    """Read every intact record of one segment, cutting a torn or damaged tail.

    The first bad record (short, checksum mismatch, unparseable) and all bytes
    after it are copied to ``corrupt_dir`` and the segment is truncated there,
    so nothing torn is ever applied. Returns None when the file is not a
    usable segment at all (it is then set aside and removed).
    """
    name = os.path.basename(path)
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            data = b""
        else:
            data = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        try:
            if not _header_ok(data, path, corrupt_dir):
                return None
            found, end, why = _read_records(data)
            if end < size:
                kept = set_aside(bytes(data[end:]), corrupt_dir, f"{name}.{end}")
                log.warning("journal %s: %s at offset %d: %d bytes moved to %s, segment truncated",
                            name, why, end, size - end, kept)
        finally:
            if size:
                data.close()
        if end < size:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    return found


def _header_ok(data, path: str, corrupt_dir: str) -> bool:
    """Check the segment header; set the file aside when it has none."""
    name = os.path.basename(path)
    try:
        records.parse_segment_header(data)
        return True
    except records.UnsupportedVersion as exc:
        raise UnsupportedJournal(f"{path}: {exc}") from None
    except ValueError as exc:
        if len(data):
            set_aside(bytes(data), corrupt_dir, name)
        log.warning("journal %s: %s: %d bytes set aside, segment removed", name, exc, len(data))
        os.unlink(path)
        fsync_dir(os.path.dirname(path))
        return False


def _read_records(data) -> tuple[list[ScannedRecord], int, str]:
    """Intact records from just after the header; the end of the last good one; why it stopped."""
    view = memoryview(data)
    pos, size, found = records.SEGMENT_HEADER.size, len(data), []
    head_size = records.RECORD_HEADER.size
    try:
        while pos < size:
            if size - pos < head_size:
                return found, pos, "short record header"
            length, crc, kind = records.RECORD_HEADER.unpack_from(view, pos)
            if length > records.MAX_PAYLOAD or pos + head_size + length > size:
                return found, pos, "short record"
            payload = view[pos + head_size:pos + head_size + length]
            if records.record_crc(length, kind, payload) != crc:
                return found, pos, "checksum mismatch"
            try:
                rec = records.decode(kind, payload)
            except records.RecordError as exc:
                return found, pos, f"unreadable record ({exc})"
            found.append(ScannedRecord(pos, head_size + length, kind, rec))
            pos += head_size + length
        return found, pos, ""
    finally:
        view.release()


def _write_all(fd: int, buffers: list[bytes]) -> None:
    """Write every buffer, in order, with as few writev calls as the kernel allows."""
    pending = [memoryview(b) for b in buffers if len(b)]
    while pending:
        written = os.writev(fd, pending[:IOV_MAX])
        while written:
            first = pending[0]
            if written >= len(first):
                written -= len(first)
                pending.pop(0)
            else:
                pending[0] = first[written:]
                written = 0


class SegmentWriter:
    """Appends batches of records to the current segment and rotates to new ones."""

    def __init__(self, journal_dir: str, *, fsync: bool):
        self.journal_dir = journal_dir
        self.fsync = fsync
        self.number = 0
        self.size = 0
        self._fd = -1
        self._tail_dirty = False   # a failed batch could not be cut off yet

    def open_existing(self, number: int) -> None:
        """Continue appending to a scanned, intact segment."""
        self._close_fd()
        path = os.path.join(self.journal_dir, segment_name(number))
        self._fd = os.open(path, os.O_WRONLY)
        self.number, self.size = number, os.lseek(self._fd, 0, os.SEEK_END)

    def rotate(self, number: int) -> None:
        """Start segment ``number`` (header written and durable, directory entry too)."""
        path = os.path.join(self.journal_dir, segment_name(number))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, [records.segment_header(number)])
            if self.fsync:
                os.fdatasync(fd)
                fsync_dir(self.journal_dir)
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        self._close_fd()
        self._fd, self.number, self.size = fd, number, records.SEGMENT_HEADER.size

    def append(self, buffers: list[bytes]) -> int:
        """Write one batch and make it durable; returns the offset it starts at.

        On any failure the segment is cut back to where the batch began, so
        the journal never keeps a partial batch, and OSError is raised.
        """
        start = self.size
        try:
            if self._tail_dirty:
                os.ftruncate(self._fd, start)
                self._tail_dirty = False
            os.lseek(self._fd, start, os.SEEK_SET)
            _write_all(self._fd, buffers)
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError:
            self._cut_back(start)
            raise
        self.size = start + sum(len(b) for b in buffers)
        return start

    def _cut_back(self, offset: int) -> None:
        try:
            os.ftruncate(self._fd, offset)
        except OSError as exc:  # retried before the next batch; a restart's scan cuts it too
            self._tail_dirty = True
            log.error("journal %s: cannot truncate to %d after a write error: %s",
                      segment_name(self.number), offset, exc)

    def close(self) -> None:
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_at(path: str, offset: int, length: int) -> bytes:
    """``length`` bytes of ``path`` from ``offset`` (a short file is an OSError)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length:
        raise OSError(f"{path}: short read at {offset}")
    return data


def delete_segment(journal_dir: str, number: int, *, fsync: bool) -> None:
    """Remove a segment nothing refers to any more."""
    os.unlink(os.path.join(journal_dir, segment_name(number)))
    if fsync:
        fsync_dir(journal_dir)

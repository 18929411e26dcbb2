"""Segment files on disk: scanning (damage set aside, torn tails cut), appending, deleting.

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
    header_size: int      # the payload starts at offset + header_size
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
    """Keep damaged bytes in ``corrupt_dir`` for the postmaster; returns the path.

    Bytes already kept under that name are not kept again (damage inside a
    segment is found again at every start until the segment is deleted)."""
    path = os.path.join(corrupt_dir, name)
    if os.path.exists(path):
        if os.path.getsize(path) == len(data) and read_file(path) == data:
            return path
        path += f".{time.time_ns()}"
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(corrupt_dir)
    return path


def scan_segment(path: str, corrupt_dir: str) -> list[ScannedRecord] | None:
    """Read every intact record of one segment, setting damaged bytes aside.

    A bad record (short, checksum mismatch, unparseable) inside the segment:
    its bytes, up to the next intact record (found by the segment's sync
    word, then checked like any record), are copied to ``corrupt_dir`` and
    skipped; everything after is kept. A bad tail (no intact record after
    it) is copied there and the segment truncated, so nothing torn is ever
    applied. Returns None when the file is not a usable segment at all (it
    is then set aside and removed).
    """
    name = os.path.basename(path)
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            data = b""
        else:
            data = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        try:
            header = _header(data, path, corrupt_dir)
            if header is None:
                return None
            found, end = _read_segment(data, header, name, corrupt_dir)
        finally:
            if size:
                data.close()
        if end < size:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    return found


def _header(data, path: str, corrupt_dir: str) -> records.SegmentHeader | None:
    """The segment header; None (the file set aside and removed) when it has none."""
    name = os.path.basename(path)
    try:
        return records.parse_segment_header(data)
    except records.UnsupportedVersion as exc:
        raise UnsupportedJournal(f"{path}: {exc}") from None
    except ValueError as exc:
        if len(data):
            set_aside(bytes(data), corrupt_dir, name)
        log.warning("journal %s: %s: %d bytes set aside, segment removed", name, exc, len(data))
        os.unlink(path)
        fsync_dir(os.path.dirname(path))
        return None


def _read_segment(data, header: records.SegmentHeader, name: str,
                  corrupt_dir: str) -> tuple[list[ScannedRecord], int]:
    """Every intact record, resuming after damage; the offset the segment must be cut at."""
    found: list[ScannedRecord] = []
    pos, size = header.size, len(data)
    while True:
        end, why = _read_records(data, header, pos, found)
        if end == size:
            return found, size
        resume = _resync(data, header, end + 1) if header.sync else -1
        if resume < 0:
            kept = set_aside(bytes(data[end:]), corrupt_dir, f"{name}.{end}")
            log.warning("journal %s: %s at offset %d: %d bytes moved to %s, segment truncated",
                        name, why, end, size - end, kept)
            return found, end
        kept = set_aside(bytes(data[end:resume]), corrupt_dir, f"{name}.{end}")
        log.warning("journal %s: %s at offset %d: %d bytes set aside in %s, "
                    "records read again from offset %d", name, why, end, resume - end, kept, resume)
        pos = resume


def _resync(data, header: records.SegmentHeader, start: int) -> int:
    """Offset of the next intact record at or after ``start`` (sync word, bounds,
    checksum and payload all good), or -1."""
    pos = data.find(header.sync, start)
    while pos >= 0:
        record, _why = _record_at(data, header, pos)
        if record is not None:
            return pos
        pos = data.find(header.sync, pos + 1)
    return -1


def _read_records(data, header: records.SegmentHeader, pos: int,
                  found: list[ScannedRecord]) -> tuple[int, str]:
    """Append intact records from ``pos`` on; the offset of the first bad one
    (the end of the data when none) and what is wrong with it."""
    size = len(data)
    while pos < size:
        record, why = _record_at(data, header, pos)
        if record is None:
            return pos, why
        found.append(record)
        pos += record.size
    return pos, ""


def _record_at(data, header: records.SegmentHeader, pos: int) -> tuple[ScannedRecord | None, str]:
    """The intact record at ``pos``, or None and why it is not one."""
    layout = header.record_header
    head_size, size = layout.size, len(data)
    if size - pos < head_size:
        return None, "short record header"
    if header.sync:
        sync, length, crc, kind = layout.unpack_from(data, pos)
        if sync != header.sync:
            return None, "no record start"
    else:
        length, crc, kind = layout.unpack_from(data, pos)
    if length > records.MAX_PAYLOAD or pos + head_size + length > size:
        return None, "short record"
    view = memoryview(data)
    try:
        payload = view[pos + head_size:pos + head_size + length]
        if records.record_crc(length, kind, payload) != crc:
            return None, "checksum mismatch"
        try:
            rec = records.decode(kind, payload)
        except records.RecordError as exc:
            return None, f"unreadable record ({exc})"
        return ScannedRecord(pos, head_size + length, head_size, kind, rec), ""
    finally:
        payload = None   # no view may outlive the scan: mmap.close() refuses while one exists
        view.release()


def _write_all(fd: int, buffers: list[bytes]) -> None:
    """Write every buffer, in order, with as few writev calls as the kernel allows.
    A file takes a whole writev but for a fault, so only a short write pays for
    joining what is left."""
    while buffers:
        batch, buffers = buffers[:IOV_MAX], buffers[IOV_MAX:]
        written = os.writev(fd, batch)
        if written < sum(map(len, batch)):
            buffers = [b"".join(batch)[written:], *buffers]


class SegmentWriter:
    """Appends batches of records to the current segment and rotates to new ones."""

    def __init__(self, journal_dir: str, *, fsync: bool):
        self.journal_dir = journal_dir
        self.fsync = fsync
        self.number = 0
        self.size = 0
        self._fd = -1
        self._tail_dirty = False   # a failed batch could not be cut off yet
        # Starts every record. Kept across rotations: records are framed before the
        # batch that holds them knows its segment.
        self.sync = os.urandom(records.SYNC_SIZE)

    def open_existing(self, number: int) -> bool:
        """Continue appending to a scanned segment; False (nothing opened) when it
        is of an older format version, which is never appended to."""
        path = os.path.join(self.journal_dir, segment_name(number))
        with open(path, "rb") as f:
            header = records.parse_segment_header(f.read(records.SEGMENT_HEADER.size))
        if header.version != records.FORMAT_VERSION:
            return False
        self._close_fd()
        self._fd = os.open(path, os.O_WRONLY)
        self.sync = header.sync
        self.number, self.size = number, os.lseek(self._fd, 0, os.SEEK_END)
        return True

    def rotate(self, number: int) -> None:
        """Start segment ``number`` (header written and durable, directory entry too)."""
        path = os.path.join(self.journal_dir, segment_name(number))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, [records.segment_header(number, self.sync)])
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


def read_file(path: str) -> bytes:
    """The whole of ``path``."""
    with open(path, "rb") as f:
        return f.read()


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

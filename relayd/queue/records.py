"""Journal records: the binary layout of every record type, encode and decode.

Pure functions, no I/O. The layout is documented byte by byte in
docs/queue-format.md; change both together, and bump FORMAT_VERSION when an
old reader could misread a new file.

A record on disk is ``[sync:8][length:u32][crc:u32][type:u8][payload]``
(little endian), where ``sync`` is the random 8 bytes of the segment header,
``length`` counts the payload bytes and ``crc`` is zlib's CRC-32 over the
length field, the type byte and the payload. The sync word lets a reader
find the next record after a damaged one; being random and secret, it is
not something message content can forge. Version 1 segments (no sync word)
are still read.

Version 3 journals each recipient's delivery outcome as fields (RECIPIENT_DONE
and DEFERRED records of types 8 and 9); the text-only types 2 and 3 of
version 2 are still read, their texts turned into outcomes by
:func:`relayd.queue.outcome.from_text`.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from relayd.queue.outcome import BOUNCED, DEFERRED as DEFERRED_OUTCOME, SENT, Outcome, from_text

MAGIC = b"RLYQ"
FORMAT_VERSION = 3
SYNC_SIZE = 8
SEGMENT_HEADER = struct.Struct("<4sHHI8sI")  # magic, version, flags, segment number, sync, crc
RECORD_HEADER = struct.Struct("<8sIIB")      # sync, payload length, crc, type
SEGMENT_HEADER_V1 = struct.Struct("<4sHHII")  # magic, version, flags, segment number, crc
RECORD_HEADER_V1 = struct.Struct("<IIB")     # payload length, crc, type
MAX_PAYLOAD = 1 << 30                        # a larger length field can only be damage

# Record types.
MESSAGE = 1
TEXT_DONE = 2        # version 2: RECIPIENT_DONE with reply texts (read only)
TEXT_DEFERRED = 3    # version 2: DEFERRED with reason texts (read only)
HOLD = 4
RELEASE = 5
DELETE = 6
REQUEUE = 7
RECIPIENT_DONE = 8
DEFERRED = 9
QID_ONLY_TYPES = {HOLD: "HOLD", RELEASE: "RELEASE", DELETE: "DELETE", REQUEUE: "REQUEUE"}

# Queue states a MESSAGE record can carry ("active" is never stored: it becomes incoming).
STATE_CODES = {"incoming": 0, "deferred": 1, "hold": 2}
STATE_NAMES = {v: k for k, v in STATE_CODES.items()}
DONE_CODES = {"delivered": 1, "bounced": 2}
DONE_NAMES = {v: k for k, v in DONE_CODES.items()}
OUTCOME_CODES = {SENT: 1, DEFERRED_OUTCOME: 2, BOUNCED: 3}
OUTCOME_NAMES = {v: k for k, v in OUTCOME_CODES.items()}
NO_OUTCOME = 0
# What a version 2 text meant: the status of the record that carried it.
_TEXT_OUTCOME = {"delivered": SENT, "bounced": BOUNCED}

_MSG_FIXED = struct.Struct("<BBIdH")        # state, storage, attempts, next_attempt, reason length
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")
INLINE, DATA_FILE = 0, 1


class UnsupportedVersion(ValueError):
    """A segment header with our magic but another format version."""


class RecordError(ValueError):
    """A record whose checksum matched but whose payload does not parse."""


@dataclass(frozen=True)
class MessageRecord:
    """A message accepted (or a compaction snapshot of one): the full queue state."""

    queue_id: str
    state: str
    attempts: int
    next_attempt: float
    last_reason: str
    envelope_json: bytes
    in_data_file: bool
    content_start: int      # offset of inline content inside the payload
    content_size: int


@dataclass(frozen=True)
class DoneRecord:
    """Recipients delivered or bounced, each with its outcome (None: none known)."""

    queue_id: str
    status: str
    outcomes: tuple[tuple[int, Outcome | None], ...]


@dataclass(frozen=True)
class DeferredRecord:
    """A delivery attempt that left recipients to retry at ``next_attempt``."""

    queue_id: str
    next_attempt: float
    outcomes: tuple[tuple[int, Outcome | None], ...]


@dataclass(frozen=True)
class QueueOpRecord:
    """HOLD, RELEASE, DELETE or REQUEUE of one message."""

    queue_id: str
    kind: int


@dataclass(frozen=True)
class SegmentHeader:
    """What a segment header says; ``sync`` is empty for version 1."""

    number: int
    version: int
    sync: bytes
    size: int               # header bytes; records start here
    record_header: struct.Struct


def segment_header(number: int, sync: bytes) -> bytes:
    """The 24-byte header that starts segment ``number`` (``sync``: 8 random bytes)."""
    head = struct.pack("<4sHHI8s", MAGIC, FORMAT_VERSION, 0, number, sync)
    return head + _U32.pack(zlib.crc32(head))


def parse_segment_header(data) -> SegmentHeader:
    """A header of a version we read; ValueError if it is not a header at all."""
    if len(data) < SEGMENT_HEADER_V1.size or bytes(data[:4]) != MAGIC:
        raise ValueError("not a relayd journal segment")
    version = int.from_bytes(data[4:6], "little")
    layout = {1: SEGMENT_HEADER_V1, 2: SEGMENT_HEADER, 3: SEGMENT_HEADER}.get(version)
    if layout is None:
        raise UnsupportedVersion(f"journal format version {version} is not supported")
    if len(data) < layout.size or _U32.unpack_from(data, layout.size - 4)[0] != zlib.crc32(
            data[:layout.size - 4]):
        raise ValueError("damaged segment header")
    if version == 1:
        _magic, _version, _flags, number, _crc = layout.unpack_from(data)
        return SegmentHeader(number, 1, b"", layout.size, RECORD_HEADER_V1)
    _magic, _version, _flags, number, sync, _crc = layout.unpack_from(data)
    return SegmentHeader(number, version, sync, layout.size, RECORD_HEADER)


def frame(kind: int, parts: list[bytes], sync: bytes) -> list[bytes]:
    """Buffers for one framed record whose payload is the concatenation of ``parts``."""
    length = sum(len(p) for p in parts)
    crc = record_crc(length, kind, b"")
    for part in parts:
        crc = zlib.crc32(part, crc)
    return [RECORD_HEADER.pack(sync, length, crc, kind), *parts]


def record_crc(length: int, kind: int, payload) -> int:
    """The checksum a record with this length, type and payload must carry."""
    return zlib.crc32(payload, zlib.crc32(bytes([kind]), zlib.crc32(_U32.pack(length))))


def _str8(text: str) -> bytes:
    raw = text.encode("ascii")
    return bytes([len(raw)]) + raw


def _str16(text: str) -> bytes:
    raw = text.encode("utf-8")[:0xFFFF]
    return len(raw).to_bytes(2, "little") + raw


def encode_message(queue_id: str, state: str, attempts: int, next_attempt: float, last_reason: str,
                   envelope_json: bytes, content: list[bytes] | None, content_size: int, *,
                   sync: bytes) -> list[bytes]:
    """A MESSAGE record; ``content`` is the inline content, or None for a data file."""
    reason = last_reason.encode("utf-8")[:0xFFFF]
    storage = INLINE if content is not None else DATA_FILE
    head = (_str8(queue_id) + _MSG_FIXED.pack(STATE_CODES[state], storage, attempts, next_attempt,
                                              len(reason))
            + reason + _U32.pack(len(envelope_json)))
    tail = list(content) if content is not None else [_U64.pack(content_size)]
    return frame(MESSAGE, [head, envelope_json, *tail], sync)


def encode_done(queue_id: str, status: str, outcomes: tuple[tuple[int, Outcome | None], ...], *,
                sync: bytes) -> list[bytes]:
    """A RECIPIENT_DONE record for recipients delivered or bounced."""
    body = [_str8(queue_id), bytes([DONE_CODES[status]]), _U32.pack(len(outcomes))]
    body += [_indexed_outcome(index, outcome) for index, outcome in outcomes]
    return frame(RECIPIENT_DONE, body, sync)


def encode_deferred(queue_id: str, next_attempt: float,
                    outcomes: tuple[tuple[int, Outcome | None], ...], *, sync: bytes) -> list[bytes]:
    """A DEFERRED record: one attempt made, an outcome per deferred recipient."""
    body = [_str8(queue_id), _F64.pack(next_attempt), _U32.pack(len(outcomes))]
    body += [_indexed_outcome(index, outcome) for index, outcome in outcomes]
    return frame(DEFERRED, body, sync)


def _indexed_outcome(index: int, outcome: Outcome | None) -> bytes:
    """``index: u32``, ``status: u8`` (0: no outcome, nothing follows), then
    dsn, reason, relay, remote and reply as str16."""
    if outcome is None:
        return _U32.pack(index) + bytes([NO_OUTCOME])
    return b"".join((_U32.pack(index), bytes([OUTCOME_CODES[outcome.status]]), _str16(outcome.dsn),
                     _str16(outcome.reason), _str16(outcome.relay), _str16(outcome.remote),
                     _str16(outcome.reply)))


def encode_queue_op(kind: int, queue_id: str, *, sync: bytes) -> list[bytes]:
    """A HOLD, RELEASE, DELETE or REQUEUE record."""
    return frame(kind, [_str8(queue_id)], sync)


class _Reader:
    """Sequential reads over one payload; any overrun is a RecordError."""

    def __init__(self, payload):
        self.buf, self.pos = payload, 0

    def take(self, n: int):
        if self.pos + n > len(self.buf):
            raise RecordError("payload too short")
        chunk = self.buf[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, st: struct.Struct):
        return st.unpack(self.take(st.size))

    def str8(self) -> str:
        return bytes(self.take(self.take(1)[0])).decode("ascii")

    def str16(self) -> str:
        return bytes(self.take(int.from_bytes(self.take(2), "little"))).decode("utf-8", "replace")

    def indexed_texts(self, status: str) -> tuple[tuple[int, Outcome | None], ...]:
        """Version 2: index and text per recipient, the text read as an outcome."""
        (count,) = self.unpack(_U32)
        return tuple((self.unpack(_U32)[0], _text_outcome(status, self.str16()))
                     for _ in range(count))

    def indexed_outcomes(self) -> tuple[tuple[int, Outcome | None], ...]:
        (count,) = self.unpack(_U32)
        return tuple((self.unpack(_U32)[0], self.outcome()) for _ in range(count))

    def outcome(self) -> Outcome | None:
        code = self.take(1)[0]
        if code == NO_OUTCOME:
            return None
        return Outcome(OUTCOME_NAMES[code], self.str16(), self.str16(), self.str16(), self.str16(),
                       self.str16())


def _text_outcome(status: str, text: str) -> Outcome | None:
    return from_text(status, text) if text else None


def decode(kind: int, payload) -> MessageRecord | DoneRecord | DeferredRecord | QueueOpRecord:
    """Parse one payload (bytes or memoryview) of record type ``kind``."""
    r = _Reader(payload)
    try:
        queue_id = r.str8()
        if kind == MESSAGE:
            return _decode_message(r, queue_id)
        if kind in (RECIPIENT_DONE, TEXT_DONE):
            status = DONE_NAMES[r.take(1)[0]]
            outcomes = (r.indexed_outcomes() if kind == RECIPIENT_DONE
                        else r.indexed_texts(_TEXT_OUTCOME[status]))
            return DoneRecord(queue_id, status, outcomes)
        if kind in (DEFERRED, TEXT_DEFERRED):
            (next_attempt,) = r.unpack(_F64)
            outcomes = (r.indexed_outcomes() if kind == DEFERRED
                        else r.indexed_texts(DEFERRED_OUTCOME))
            return DeferredRecord(queue_id, next_attempt, outcomes)
        if kind in QID_ONLY_TYPES:
            return QueueOpRecord(queue_id, kind)
    except (KeyError, UnicodeDecodeError) as exc:
        raise RecordError(f"bad field: {exc}") from None
    raise RecordError(f"unknown record type {kind}")


def _decode_message(r: _Reader, queue_id: str) -> MessageRecord:
    state, storage, attempts, next_attempt, reason_len = r.unpack(_MSG_FIXED)
    last_reason = bytes(r.take(reason_len)).decode("utf-8", "replace")
    (env_len,) = r.unpack(_U32)
    envelope_json = bytes(r.take(env_len))
    if storage == DATA_FILE:
        (size,) = r.unpack(_U64)
        start = r.pos
    elif storage == INLINE:
        start, size = r.pos, len(r.buf) - r.pos
    else:
        raise RecordError(f"unknown content storage {storage}")
    return MessageRecord(queue_id, STATE_NAMES[state], attempts, next_attempt, last_reason,
                         envelope_json, storage == DATA_FILE, start, size)

"""Torn tails and damaged records are cut at start, set aside, and never delivered."""
from __future__ import annotations

import logging
import os
import shutil
import struct
import zlib

import pytest

from relayd.queue import records
from relayd.queue.journal import UnsupportedJournal
from tests.queue.helpers import last_segment, message_bytes, opened, queue


def _three_messages(path):
    """Commit three messages; returns their ids and the offset where the third record starts."""
    store = opened(path)
    first = [queue(store, message_bytes(t)) for t in ("one", "two")]
    third_starts = os.path.getsize(last_segment(path))
    third = queue(store, message_bytes("three"))
    store.close()
    return first, third, third_starts


def test_truncation_at_every_offset_of_the_last_record_keeps_earlier_messages(tmp_path, caplog):
    pristine = tmp_path / "pristine"
    first, third, start = _three_messages(pristine)
    seg_bytes = open(last_segment(pristine), "rb").read()
    caplog.set_level(logging.WARNING, logger="relayd.queue")
    for cut in range(start + 1, len(seg_bytes)):
        work = tmp_path / f"cut{cut}"
        shutil.copytree(pristine, work)
        with open(last_segment(work), "r+b") as f:
            f.truncate(cut)
        store = opened(work, fsync=False)
        assert [m.queue_id for m in store.messages()] == first, cut
        store.close()
        assert os.path.getsize(last_segment(work)) == start
        [aside] = os.listdir(work / "corrupt")
        assert (work / "corrupt" / aside).read_bytes() == seg_bytes[start:cut]
        shutil.rmtree(work)
    assert "moved to" in caplog.text and "truncated" in caplog.text


def test_a_flipped_byte_fails_the_checksum_and_is_cut(tmp_path, caplog):
    first, third, start = _three_messages(tmp_path)
    path = last_segment(tmp_path)
    data = bytearray(open(path, "rb").read())
    data[start + 40] ^= 0x20
    open(path, "wb").write(data)
    with caplog.at_level(logging.WARNING, logger="relayd.queue"):
        store = opened(tmp_path)
    assert "checksum mismatch" in caplog.text
    assert [m.queue_id for m in store.messages()] == first
    assert store.get(third) is None
    later = queue(store, message_bytes("four"))   # the queue is not blocked
    store.close()
    store = opened(tmp_path)
    assert [m.queue_id for m in store.messages()] == first + [later]
    assert [f.read_bytes() for f in (tmp_path / "corrupt").iterdir()] == [bytes(data[start:])]
    store.close()


def test_a_segment_without_a_valid_header_is_set_aside(tmp_path):
    store = opened(tmp_path)
    qid = queue(store, message_bytes("kept"))
    store.close()
    (tmp_path / "journal" / "00000009.seg").write_bytes(b"RLYQ\x01")   # a crash while creating it
    store = opened(tmp_path)
    assert [m.queue_id for m in store.messages()] == [qid]
    assert os.listdir(tmp_path / "corrupt") == ["00000009.seg"]
    store.close()


def test_a_segment_of_an_unknown_format_version_stops_the_start_untouched(tmp_path):
    head = struct.pack("<4sHHI", b"RLYQ", records.FORMAT_VERSION + 1, 0, 1)
    future = head + struct.pack("<I", zlib.crc32(head)) + b"records we cannot read"
    (tmp_path / "journal").mkdir()
    (tmp_path / "journal" / "00000001.seg").write_bytes(future)
    with pytest.raises(UnsupportedJournal):
        opened(tmp_path)
    assert (tmp_path / "journal" / "00000001.seg").read_bytes() == future

"""A damaged record inside a segment costs that record only: the reader finds the
next intact one by the segment's sync word, and sets the bad bytes aside."""
from __future__ import annotations

import logging
import os
import shutil
import struct
import zlib

import pytest

from relayd.queue import records
from tests.queue.helpers import envelope, last_segment, message_bytes, opened, queue

N = 7
BAD = 3


def _segment_with_messages(path):
    """N messages in one segment; their ids, contents and record offsets (and the end)."""
    store = opened(path)
    ids, contents, offsets = [], [], []
    for n in range(N):
        offsets.append(os.path.getsize(last_segment(path)))
        contents.append(message_bytes(f"message {n}", 300 + 97 * n))
        ids.append(queue(store, contents[-1]))
    store.close()
    offsets.append(os.path.getsize(last_segment(path)))
    return ids, contents, offsets


def _flip_payload(data, start, end):
    data[(start + end) // 2] ^= 0x10


def _flip_length(data, start, end):
    data[start + records.SYNC_SIZE + 2] ^= 0x01   # a length too big: the record looks short


def _flip_sync(data, start, end):
    data[start] ^= 0x80


def _zero_record(data, start, end):
    data[start:end] = bytes(end - start)


def _zero_across_into_next(data, start, end):
    data[start + 20:end + 5] = bytes(end + 5 - start - 20)   # the next record's start too


def _cut_out_middle(data, start, end):
    del data[start + 30:end - 10]   # a record torn in the middle, the rest shifted up


DAMAGE = [_flip_payload, _flip_length, _flip_sync, _zero_record, _cut_out_middle]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_one_bad_record_in_the_middle_loses_that_message_only(tmp_path, caplog, damage):
    ids, contents, offsets = _segment_with_messages(tmp_path)
    path = last_segment(tmp_path)
    data = bytearray(open(path, "rb").read())
    start, end = offsets[BAD], offsets[BAD + 1]
    damage(data, start, end)
    open(path, "wb").write(data)
    resume = end - (offsets[-1] - len(data))   # where the next record now starts

    with caplog.at_level(logging.WARNING, logger="relayd.queue"):
        store = opened(tmp_path)
    survivors = [i for i in range(N) if i != BAD]
    assert [m.queue_id for m in store.messages()] == [ids[i] for i in survivors]
    for i in survivors:
        assert store.read_content(ids[i]) == contents[i]
    name = os.path.basename(path)
    assert f"journal {name}: " in caplog.text and f"at offset {start}:" in caplog.text
    assert f"records read again from offset {resume}" in caplog.text
    aside = tmp_path / "corrupt" / f"{name}.{start}"
    assert aside.read_bytes() == bytes(data[start:resume])
    assert os.path.getsize(path) == len(data)   # nothing after the damage was cut

    later = queue(store, message_bytes("after the restart"))
    store.close()
    store = opened(tmp_path)   # a second start finds the same damage and keeps no second copy
    assert [m.queue_id for m in store.messages()] == [ids[i] for i in survivors] + [later]
    assert os.listdir(tmp_path / "corrupt") == [aside.name]
    store.close()


def test_damage_reaching_into_the_next_record_loses_both_and_nothing_else(tmp_path):
    ids, contents, offsets = _segment_with_messages(tmp_path)
    path = last_segment(tmp_path)
    data = bytearray(open(path, "rb").read())
    _zero_across_into_next(data, offsets[BAD], offsets[BAD + 1])
    open(path, "wb").write(data)
    store = opened(tmp_path)
    assert [m.queue_id for m in store.messages()] == [ids[i] for i in range(N)
                                                      if i not in (BAD, BAD + 1)]
    [aside] = (tmp_path / "corrupt").iterdir()
    assert aside.read_bytes() == bytes(data[offsets[BAD]:offsets[BAD + 2]])
    store.close()


class _AnyContent:
    """Stands in for the stored-form check, which refuses these binary bytes
    before they reach the journal: the journal's own defence is shown alone."""

    problem = None

    def feed(self, chunk, checked=False):
        return True

    def finish(self):
        return None


def test_records_forged_in_message_content_are_never_taken_for_records(tmp_path, monkeypatch):
    """The sync word is random per journal and not in any byte a client sends, so
    a client cannot plant a record that a resync would pick up: here message
    content carries perfect records (every sync word but the real one, and
    version 1 frames), and the record holding it is damaged."""
    monkeypatch.setattr("relayd.queue.content.StoredForm", _AnyContent)
    store = opened(tmp_path)
    before = queue(store, message_bytes("before"))
    forged_env = envelope(sender="ceo@victim.example").to_json()
    forged = b"".join(
        b"".join(records.encode_message("FORGED000001", "incoming", 0, 0.0, "", forged_env,
                                        [b"Subject: forged\r\n\r\nx\r\n"], 20, sync=sync))
        for sync in (bytes(8), b"\xff" * 8, os.urandom(8)))
    v1 = records.encode_message("FORGED000002", "incoming", 0, 0.0, "", forged_env, [b"x"], 1,
                                sync=bytes(8))
    forged += b"".join(v1)[records.SYNC_SIZE:]
    carrier_at = os.path.getsize(last_segment(tmp_path))
    carrier = queue(store, b"Subject: carrier\r\n\r\n" + forged + b"\r\n")
    after = queue(store, message_bytes("after"))
    store.close()
    path = last_segment(tmp_path)
    data = bytearray(open(path, "rb").read())
    data[carrier_at + records.SYNC_SIZE + 5] ^= 0x01    # the carrier's checksum no longer matches
    open(path, "wb").write(data)
    store = opened(tmp_path)
    assert [m.queue_id for m in store.messages()] == [before, after]
    assert carrier not in {m.queue_id for m in store.messages()}
    store.close()


def test_version_1_segments_are_still_read_and_never_appended_to(tmp_path):
    store = opened(tmp_path)
    ids = [queue(store, message_bytes(f"old {n}")) for n in range(3)]
    store.close()
    path = last_segment(tmp_path)
    number = int(os.path.basename(path).split(".")[0])
    old = open(path, "rb").read()
    header = records.parse_segment_header(old)
    head = struct.pack("<4sHHI", b"RLYQ", 1, 0, number)
    v1 = bytearray(head + struct.pack("<I", zlib.crc32(head)))
    pos = header.size
    while pos < len(old):   # each record without its sync word: the version 1 frame
        length = struct.unpack_from("<I", old, pos + records.SYNC_SIZE)[0]
        v1 += old[pos + records.SYNC_SIZE:pos + records.RECORD_HEADER.size + length]
        pos += records.RECORD_HEADER.size + length
    open(path, "wb").write(v1)
    store = opened(tmp_path)
    assert [m.queue_id for m in store.messages()] == ids
    assert store.read_content(ids[1]) == message_bytes("old 1")
    new = queue(store, message_bytes("new"))
    store.close()
    assert open(path, "rb").read() == bytes(v1)   # a new segment took the new record
    store = opened(tmp_path)
    assert [m.queue_id for m in store.messages()] == ids + [new]
    store.close()


def test_damage_in_a_version_1_segment_still_cuts_its_tail(tmp_path):
    """Version 1 has no sync word to resynchronise on: the old rule applies."""
    test_version_1_segments_are_still_read_and_never_appended_to(tmp_path / "q")
    shutil.rmtree(tmp_path / "q" / "corrupt")
    os.mkdir(tmp_path / "q" / "corrupt")
    seg = sorted((tmp_path / "q" / "journal").iterdir())[0]
    data = bytearray(seg.read_bytes())
    data[40] ^= 0x01   # inside the first record
    seg.write_bytes(data)
    store = opened(tmp_path / "q")
    assert len(store.messages()) == 1   # the message in the new segment
    head = records.SEGMENT_HEADER_V1.size
    assert (tmp_path / "q" / "corrupt" / f"{seg.name}.{head}").read_bytes() == bytes(data[head:])
    store.close()

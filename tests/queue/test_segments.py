"""Finished segments are deleted; old segments holding a few live messages are compacted."""
from __future__ import annotations

import os
import time

from relayd.queue.outcome import DEFERRED, SENT, Outcome
from tests.queue.helpers import message_bytes, opened, queue, random_wire, segment_files

SMALL = dict(segment_size=8 << 10, inline_limit=4 << 10)
TIMED_OUT = Outcome(DEFERRED, "4.4.1", "Connection timed out")


def _fill(store, count: int, **kw) -> list[str]:
    return [queue(store, message_bytes(f"s{i}", 1500), **kw) for i in range(count)]


def test_segments_are_deleted_once_every_message_in_them_is_finished(tmp_path):
    store = opened(tmp_path, **SMALL)
    qids = _fill(store, 30) + [queue(store, random_wire(20 << 10))]   # one through a data file
    assert len(segment_files(tmp_path)) >= 4
    for qid in qids:
        store.record_results(qid, [0], [], [], {0: Outcome(SENT, "2.0.0", "250 2.0.0 Ok")}, None)
    store.close()
    assert segment_files(tmp_path) == [segment_files(tmp_path)[-1]]   # only the current one
    assert os.listdir(tmp_path / "data") == []
    store = opened(tmp_path, **SMALL)
    assert store.messages() == []
    store.close()


def test_an_old_live_segment_blocks_deletion_until_compacted(tmp_path):
    store = opened(tmp_path, **SMALL)
    qids = _fill(store, 30)
    long_deferred, others = qids[0], qids[1:]
    retry_at = time.time() + 3600
    store.hold(qids[1])
    store.record_results(long_deferred, [], [], [0], {0: TIMED_OUT}, retry_at)
    for qid in others[1:]:
        store.record_results(qid, [0], [], [], {}, None)
    store.flush()
    first_segment = segment_files(tmp_path)[0]
    assert first_segment == "00000001.seg"   # pinned by the deferred and the held message

    store.compact()
    assert first_segment not in segment_files(tmp_path)
    assert len(segment_files(tmp_path)) <= 2
    store.close()

    store = opened(tmp_path, **SMALL)
    assert {m.queue_id for m in store.messages()} == {long_deferred, qids[1]}
    msg = store.get(long_deferred)
    assert (msg.state, msg.attempts, msg.next_attempt) == ("deferred", 1, retry_at)
    assert msg.envelope.recipients[0].outcome == TIMED_OUT
    assert store.get(qids[1]).state == "hold"
    assert store.read_content(long_deferred) == message_bytes("s0", 1500)
    store.close()


def test_compaction_happens_by_itself_for_segments_sealed_long_enough(tmp_path):
    store = opened(tmp_path, compact_after=0, **SMALL)
    qids = _fill(store, 30)
    big = queue(store, random_wire(20 << 10))
    store.record_results(qids[0], [], [], [0], {0: TIMED_OUT}, time.time() + 3600)
    store.record_results(big, [], [], [0], {0: TIMED_OUT}, time.time() + 3600)
    for qid in qids[1:]:
        store.record_results(qid, [0], [], [], {}, None)
    store.close()   # closing writes what the committer queued, including compaction snapshots
    assert "00000001.seg" not in segment_files(tmp_path)
    assert len(segment_files(tmp_path)) <= 2

    store = opened(tmp_path, **SMALL)
    assert {m.queue_id for m in store.messages("deferred")} == {qids[0], big}
    assert len(store.read_content(big)) == 20 << 10
    store.close()

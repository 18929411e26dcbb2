"""Start-up: rebuild the queue views from the journal segments alone.

Each segment is scanned (torn tails cut, see :func:`journal.scan_segment`)
and its records applied in order. Data files no live message refers to are
leftovers of a crash or of finished messages and are removed; a live message
whose data file is missing is shown in the "corrupt" state and never delivered.
"""
from __future__ import annotations

import logging
import os

from relayd.queue import journal, records
from relayd.queue.envelope import Envelope
from relayd.queue.offload import blocking
from relayd.queue.qid import QueueIdGenerator
from relayd.queue.state import CORRUPT, Location, QueuedMessage, QueueState

log = logging.getLogger("relayd.queue")


def recover(directory: str, state: QueueState, qids: QueueIdGenerator) -> list[int]:
    """Fill ``state`` from ``<directory>/journal``; returns the segments kept, oldest first."""
    journal_dir = os.path.join(directory, "journal")
    corrupt_dir = os.path.join(directory, "corrupt")
    kept = []
    for number in blocking(journal.list_segments, journal_dir):
        path = os.path.join(journal_dir, journal.segment_name(number))
        scanned = blocking(journal.scan_segment, path, corrupt_dir)
        if scanned is None:
            continue
        kept.append(number)
        for item in scanned:
            qids.observe(item.record.queue_id)
            replay(state, number, item)
    wanted = {qid for qid, where in state.locations.items() if where.content_offset < 0}
    for qid in blocking(_sweep_data_files, os.path.join(directory, "data"), wanted):
        log.warning("%s: data file missing, message moved to the corrupt queue", qid)
        state.forget_home(qid)
        state.messages[qid].state = CORRUPT
    return kept


def replay(state: QueueState, segment: int, item: journal.ScannedRecord) -> None:
    """Apply one scanned record to ``state``."""
    rec = item.record
    if isinstance(rec, records.MessageRecord):
        _replay_message(state, segment, item, rec)
    elif isinstance(rec, records.DoneRecord):
        if state.apply_done(rec):
            state.forget_home(rec.queue_id)
    elif isinstance(rec, records.DeferredRecord):
        state.apply_deferred(rec)
    elif state.apply_op(rec.kind, rec.queue_id) and rec.kind == records.DELETE:
        state.forget_home(rec.queue_id)


def _replay_message(state: QueueState, segment: int, item: journal.ScannedRecord,
                    rec: records.MessageRecord) -> None:
    try:
        envelope = Envelope.from_json(rec.envelope_json)
    except ValueError as exc:
        log.warning("%s: unreadable envelope in journal segment %d: %s", rec.queue_id, segment, exc)
        state.forget_home(rec.queue_id)
        state.messages[rec.queue_id] = QueuedMessage(rec.queue_id, Envelope("", [], 0.0), CORRUPT)
        return
    msg = QueuedMessage(rec.queue_id, envelope, rec.state, rec.attempts, rec.next_attempt,
                        rec.last_reason)
    offset = -1 if rec.in_data_file else item.offset + item.header_size + rec.content_start
    state.apply_message(msg, Location(segment, item.size, offset, rec.content_size))


def _sweep_data_files(data_dir: str, wanted: set[str]) -> set[str]:
    """Remove data files no live message refers to; returns the wanted ones that are missing."""
    present = set(os.listdir(data_dir))
    for name in present - wanted:
        os.unlink(os.path.join(data_dir, name))
    return wanted - present

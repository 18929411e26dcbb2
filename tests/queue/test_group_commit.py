"""Group commit: concurrent commits share fdatasyncs; a failed flush fails its waiters only."""
from __future__ import annotations

import errno
import os

import gevent
import pytest

from relayd.queue.outcome import DEFERRED, Outcome
from relayd.queue.store import QueueWriteError

from tests.queue.helpers import message_bytes, opened, queue, segment_files


def test_fifty_concurrent_commits_share_far_fewer_fdatasyncs(tmp_path, monkeypatch):
    store = opened(tmp_path)
    calls = []
    real_fdatasync = os.fdatasync

    def counting_fdatasync(fd):   # a wrapper that counts the real calls, not a mock
        calls.append(fd)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", counting_fdatasync)
    jobs = [gevent.spawn(queue, store, message_bytes(f"g{i}", 4096)) for i in range(50)]
    gevent.joinall(jobs, raise_error=True)
    qids = {job.value for job in jobs}
    monkeypatch.undo()
    assert len(qids) == 50
    assert 1 <= len(calls) <= 10
    store.close()

    store = opened(tmp_path)
    assert {m.queue_id for m in store.messages()} == qids
    store.close()


def test_flush_failure_raises_queue_write_error_and_keeps_the_journal_readable(tmp_path, monkeypatch):
    # ENOSPC cannot be produced for real here, so os.writev is replaced by a fault that first
    # writes part of the batch for real (a torn write) and then fails with ENOSPC.
    store = opened(tmp_path, retry_delay=0)
    good = queue(store, message_bytes("before"))
    size_before = os.path.getsize(tmp_path / "journal" / segment_files(tmp_path)[0])
    real_writev = os.writev

    def torn_then_enospc(fd, buffers):
        real_writev(fd, [bytes(buffers[0])[:5]])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", torn_then_enospc)
    failed = [gevent.spawn(queue, store, message_bytes(f"full{i}")) for i in range(3)]
    gevent.joinall(failed)
    monkeypatch.undo()
    assert all(isinstance(job.exception, QueueWriteError) for job in failed)
    assert os.path.getsize(tmp_path / "journal" / segment_files(tmp_path)[0]) == size_before
    assert [m.queue_id for m in store.messages()] == [good]

    after = queue(store, message_bytes("after"))   # the disk recovered: commits work again
    store.close()
    store = opened(tmp_path)
    assert [m.queue_id for m in store.messages()] == [good, after]
    assert os.listdir(tmp_path / "corrupt") == []   # nothing torn was left behind
    store.close()


def test_delivery_results_are_written_again_after_a_failed_flush(tmp_path, monkeypatch):
    # Same simulated ENOSPC as above: results are not waited for, so they must be retried.
    store = opened(tmp_path, retry_delay=0)
    qid = queue(store, message_bytes("retry"), n_rcpt=2)
    real_writev = os.writev
    faults = iter([OSError(errno.ENOSPC, "No space left on device")])

    def enospc_once(fd, buffers):
        fault = next(faults, None)
        if fault is not None:
            raise fault
        return real_writev(fd, buffers)

    monkeypatch.setattr(os, "writev", enospc_once)
    store.record_results(qid, [0], [], [1], {1: Outcome(DEFERRED, "4.4.1", "connection timed out")}, 12345.0)
    with pytest.raises(QueueWriteError):
        store.flush()
    store.flush()
    store.close()
    store = opened(tmp_path)
    assert store.get(qid).pending_recipients() == [1]
    assert store.get(qid).next_attempt == 12345.0
    store.close()


def test_short_writes_lose_and_repeat_nothing(tmp_path, monkeypatch):
    # A regular file takes a whole writev unless something goes wrong, so short writes
    # cannot be produced for real: os.writev is replaced by one that writes at most
    # seven octets of the first buffer each time, for real.
    store = opened(tmp_path)
    real_writev = os.writev
    calls = []

    def short_writev(fd, buffers):
        calls.append(len(buffers))
        return real_writev(fd, [bytes(buffers[0])[:7]])

    monkeypatch.setattr(os, "writev", short_writev)
    qids = [queue(store, message_bytes(f"short{i}"), n_rcpt=2) for i in range(3)]
    monkeypatch.undo()
    store.close()
    assert len(calls) > 3 * 10
    store = opened(tmp_path)
    assert [m.queue_id for m in store.messages()] == qids
    assert [store.read_content(qid) for qid in qids] == [message_bytes(f"short{i}") for i in range(3)]
    store.close()

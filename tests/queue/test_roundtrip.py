"""Messages, recipient statuses and queue operations survive close and reopen."""
from __future__ import annotations

import os
import re
import time

from relayd.queue.envelope import Envelope
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT, Outcome

from tests.queue.helpers import envelope, message_bytes, opened, queue, random_wire


SENT_OK = Outcome(SENT, "2.0.0", "250 2.0.0 Ok", "mx.example.net[192.0.2.1]:25")
UNAVAILABLE = Outcome(DEFERRED, "4.3.0", "host mx.example.net[192.0.2.1] said: 451 4.3.0 mailbox "
                      "temporarily unavailable (in reply to RCPT TO command)",
                      "mx.example.net[192.0.2.1]:25", "mx.example.net",
                      "451 4.3.0 mailbox temporarily unavailable")


def test_commit_close_reopen_keeps_messages_envelopes_and_content(tmp_path):
    store = opened(tmp_path)
    contents = {queue(store, message_bytes(f"m{i}", 100 * i), n_rcpt=i + 1): message_bytes(f"m{i}", 100 * i)
                for i in range(3)}
    before = {m.queue_id: m.envelope for m in store.messages()}
    store.close()

    store = opened(tmp_path)
    assert {m.queue_id: m.envelope for m in store.messages()} == before
    assert [m.state for m in store.messages()] == ["incoming"] * 3
    for qid, content in contents.items():
        assert store.read_content(qid) == content
        assert store.get(qid).pending_recipients() == list(range(len(before[qid].recipients)))
    store.close()


def test_envelope_json_round_trip_ignores_unknown_keys():
    env = envelope(2)
    env.recipients[1].original = "Alias@Example.NET"
    env.attrs["filter"] = "smtp:[127.0.0.1]:10025"
    assert Envelope.from_json(env.to_json()) == env
    widened = env.to_json()[:-1] + b',"added_later":1}'
    assert Envelope.from_json(widened) == env


def test_queue_ids_are_postfix_like_and_unique_across_restarts(tmp_path):
    store = opened(tmp_path)
    first = [queue(store, b"x\r\n") for _ in range(5)]
    store.close()
    store = opened(tmp_path)
    second = [store.new_queue_id() for _ in range(1000)]
    store.close()
    ids = first + second
    assert all(re.fullmatch(r"[0-9A-F]{10,12}", q) for q in ids)
    assert len(set(ids)) == len(ids)
    assert min(second) > max(first)


def test_partial_success_leaves_only_the_deferred_recipient(tmp_path):
    store = opened(tmp_path)
    qid = queue(store, message_bytes("partial"), n_rcpt=3)
    store.mark_active(qid)
    assert store.get(qid).state == "active"
    retry_at = time.time() + 300
    store.record_results(qid, delivered=[0, 1], bounced=[], deferred=[2],
                         outcomes={0: SENT_OK, 1: SENT_OK, 2: UNAVAILABLE},
                         next_attempt=retry_at)
    store.close()

    store = opened(tmp_path)
    msg = store.get(qid)
    assert msg.state == "deferred" and msg.attempts == 1
    assert msg.pending_recipients() == [2]
    assert [r.status for r in msg.envelope.recipients] == ["delivered", "delivered", "deferred"]
    assert msg.last_reason == "4.3.0 host mx.example.net[192.0.2.1] said: 451 4.3.0 mailbox " \
                              "temporarily unavailable (in reply to RCPT TO command)"
    assert [r.outcome for r in msg.envelope.recipients] == [SENT_OK, SENT_OK, UNAVAILABLE]
    assert store.due(time.time()) == []
    assert [m.queue_id for m in store.due(retry_at)] == [qid]
    store.close()


def test_message_leaves_the_queue_when_every_recipient_is_done(tmp_path):
    store = opened(tmp_path)
    qid = queue(store, message_bytes("done"), n_rcpt=2)
    store.record_results(qid, delivered=[0], bounced=[1], deferred=[],
                         outcomes={0: SENT_OK, 1: Outcome(BOUNCED, "5.1.1", "User unknown")},
                         next_attempt=None)
    assert store.get(qid) is None
    store.close()
    store = opened(tmp_path)
    assert store.messages() == []
    store.close()


def test_hold_release_delete_requeue_survive_reopen(tmp_path):
    store = opened(tmp_path)
    held, released, deleted, requeued = (queue(store, message_bytes(t)) for t in "abcd")
    store.record_results(requeued, [], [], [0], {0: Outcome(DEFERRED, "4.4.1", "connection refused")}, time.time() + 3600)
    store.record_results(released, [], [], [0], {0: Outcome(DEFERRED, "4.4.2", "timeout")}, time.time() + 3600)
    assert store.hold(held) and store.hold(released) and store.release(released)
    assert store.delete(deleted) and store.requeue(requeued)
    assert not store.release(requeued) and not store.delete(deleted) and not store.requeue(held)
    store.close()

    store = opened(tmp_path)
    assert store.get(held).state == "hold"
    assert store.get(released).state == "deferred"      # like postsuper -H: back to deferred
    assert store.get(deleted) is None
    assert (store.get(requeued).state, store.get(requeued).next_attempt) == ("incoming", 0.0)
    assert {m.queue_id for m in store.due(time.time())} == {requeued}
    store.close()


def test_due_is_oldest_first_and_skips_hold_and_active(tmp_path):
    store = opened(tmp_path)
    qids = [queue(store, message_bytes(t)) for t in "abcd"]
    store.hold(qids[1])
    store.mark_active(qids[2])
    assert [m.queue_id for m in store.due(time.time())] == [qids[0], qids[3]]
    store.close()
    store = opened(tmp_path)   # an active message was not finished: it is incoming again
    assert [m.queue_id for m in store.due(time.time())] == [qids[0], qids[2], qids[3]]
    store.close()


def test_large_message_goes_through_a_data_file_and_round_trips(tmp_path):
    store = opened(tmp_path)
    big = random_wire(2 << 20)
    qid = queue(store, big, n_rcpt=2)
    assert os.path.getsize(tmp_path / "data" / qid) == len(big)
    assert os.path.getsize(tmp_path / "journal" / "00000001.seg") < 4096   # only a reference
    store.close()

    store = opened(tmp_path)
    assert store.read_content(qid) == big
    store.record_results(qid, [0, 1], [], [], {}, None)
    store.close()
    assert os.listdir(tmp_path / "data") == []


def test_aborted_writer_and_orphan_data_files_are_removed(tmp_path):
    store = opened(tmp_path, inline_limit=1024)
    writer = store.content_writer(store.new_queue_id())
    writer.write(b"x" * 4096)
    assert len(os.listdir(tmp_path / "data")) == 1
    writer.abort()
    assert os.listdir(tmp_path / "data") == []
    store.close()

    (tmp_path / "data" / "0123456789AB").write_bytes(b"left by a crash before commit")
    store = opened(tmp_path)
    assert os.listdir(tmp_path / "data") == []
    store.close()


def test_missing_data_file_puts_the_message_in_the_corrupt_queue(tmp_path):
    store = opened(tmp_path, inline_limit=1024)
    qid = queue(store, b"y" * 4094 + b"\r\n")
    store.close()
    os.unlink(tmp_path / "data" / qid)
    store = opened(tmp_path, inline_limit=1024)
    assert store.get(qid).state == "corrupt"
    assert store.due(time.time()) == []
    store.close()


def test_a_message_committed_on_hold_is_never_due_and_stays_held(tmp_path):
    from relayd.queue.envelope import Recipient
    from relayd.queue.store import QueueStore
    store = QueueStore(str(tmp_path), fsync=False)
    store.open()
    qid = store.new_queue_id()
    writer = store.content_writer(qid)
    writer.write(b"Subject: held\r\n\r\nx\r\n")
    store.commit(qid, Envelope("a@example.org", [Recipient("b@example.net")], 1.0), writer, hold=True)
    assert store.get(qid).state == "hold" and store.due(10**10) == []
    store.close()
    store = QueueStore(str(tmp_path), fsync=False)
    store.open()
    assert store.get(qid).state == "hold"
    assert store.release(qid) and [m.queue_id for m in store.due(10**10)] == [qid]
    store.close()

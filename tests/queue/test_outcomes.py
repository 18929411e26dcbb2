"""Delivery outcomes in the queue: journalled as fields, read back equal, and
queues written before outcomes were values (journal format 2, texts) still load."""
from __future__ import annotations

import json
import os
import struct
import time
import zlib

from relayd.queue import records
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT, Outcome, from_text
from tests.queue.helpers import envelope, message_bytes, opened, queue, segment_files

REFUSED = Outcome(BOUNCED, "5.1.1", "host mx.example.net[192.0.2.1] said: 550 5.1.1 No such user "
                  "(in reply to RCPT TO command)", "mx.example.net[192.0.2.1]:25", "mx.example.net",
                  "550 5.1.1 No such user")


def test_from_text_reads_what_older_queues_stored():
    assert from_text(BOUNCED, str(REFUSED)) == Outcome(BOUNCED, "5.1.1", REFUSED.reason,
                                                       remote="mx.example.net",
                                                       reply="550 5.1.1 No such user")
    assert from_text(DEFERRED, "4.4.1 connect to mx[192.0.2.1]:25: Connection refused") == \
        Outcome(DEFERRED, "4.4.1", "connect to mx[192.0.2.1]:25: Connection refused")
    assert from_text(DEFERRED, "timeout") == Outcome(DEFERRED, "", "timeout")
    assert str(from_text(DEFERRED, "timeout")) == "timeout"


def test_from_text_takes_the_last_wrapper_when_the_reply_quotes_one():
    said = "550 5.1.1 x (in reply to RCPT TO command) host y[1] said: 250 ok"
    outcome = from_text(BOUNCED, f"5.1.1 host mx.example.net[192.0.2.1] said: {said} "
                                 "(in reply to RCPT TO command)")
    assert (outcome.remote, outcome.reply, outcome.reply_code) == ("mx.example.net", said, 550)


def test_from_text_names_no_remote_for_other_wordings():
    for text in ("5.0.0 host mx said: 550 no (in reply to RCPT TO command)",      # no [addr]
                 "5.0.0 host a b[1] said: 550 no (in reply to RCPT TO command)",  # space in name
                 "5.0.0 host mx[1] said: no reply code (in reply to RCPT TO command)",
                 "5.0.0 host mx[1] refused to talk to me: 554 go away"):
        outcome = from_text(BOUNCED, text)
        assert (outcome.remote, outcome.reply, outcome.reply_code) == ("", "", 0), text


def test_outcomes_and_their_absence_survive_reopen(tmp_path):
    store = opened(tmp_path)
    qid = queue(store, message_bytes("typed"), n_rcpt=3)
    timed_out = Outcome(DEFERRED, "4.4.2", "conversation with mx[192.0.2.1] timed out",
                        "mx[192.0.2.1]:25")
    store.record_results(qid, delivered=[0], bounced=[1], deferred=[2],
                         outcomes={1: REFUSED, 2: timed_out}, next_attempt=time.time() + 60)
    store.close()
    store = opened(tmp_path)
    recipients = store.get(qid).envelope.recipients
    assert [(r.status, r.outcome) for r in recipients] == [
        ("delivered", None), ("bounced", REFUSED), ("deferred", timed_out)]
    store.compact()   # the snapshot keeps them in the envelope
    store.close()
    store = opened(tmp_path)
    assert [r.outcome for r in store.get(qid).envelope.recipients] == [None, REFUSED, timed_out]
    store.close()


def _text_record(kind: int, queue_id: str, head: bytes, texts: dict[int, str], sync: bytes) -> bytes:
    """A version 2 RECIPIENT_DONE or DEFERRED record: index + str16 text each."""
    body = bytes([len(queue_id)]) + queue_id.encode() + head + struct.pack("<I", len(texts))
    for index, text in texts.items():
        raw = text.encode()
        body += struct.pack("<IH", index, len(raw)) + raw
    return b"".join(records.frame(kind, [body], sync))


def test_a_version_2_journal_with_text_results_loads_as_outcomes(tmp_path):
    """A queue written by the previous release: a v2 segment whose attempts
    recorded "<dsn> <reason>" texts, and a snapshot whose envelope JSON keeps
    them under "reply"."""
    opened(tmp_path).close()   # the directories
    for name in segment_files(tmp_path):
        os.unlink(tmp_path / "journal" / name)
    sync = os.urandom(records.SYNC_SIZE)
    head = struct.pack("<4sHHI8s", b"RLYQ", 2, 0, 1, sync)
    segment = head + struct.pack("<I", zlib.crc32(head))
    content = message_bytes("old")
    env = envelope(3, size=len(content))
    segment += b"".join(records.encode_message("0A1B2C3D4E", "incoming", 0, 0.0, "", env.to_json(),
                                               [content], len(content), sync=sync))
    segment += _text_record(records.TEXT_DONE, "0A1B2C3D4E", bytes([1]),
                            {0: "2.0.0 250 2.0.0 Ok: queued as 9F8E7D"}, sync)
    segment += _text_record(records.TEXT_DEFERRED, "0A1B2C3D4E", struct.pack("<d", 1e10),
                            {1: "4.4.1 connect to mx.example.net[192.0.2.1]:25: Connection refused",
                             2: str(REFUSED)}, sync)
    old_env = json.loads(envelope(1, size=len(content)).to_json())
    for rcpt in old_env["recipients"]:
        del rcpt["outcome"]
        rcpt.update(status="deferred", reply="4.4.2 conversation with mx[192.0.2.1] timed out")
    segment += b"".join(records.encode_message(
        "5F6A7B8C9D", "deferred", 2, 1e10, "4.4.2 conversation with mx[192.0.2.1] timed out",
        json.dumps(old_env).encode(), [content], len(content), sync=sync))
    (tmp_path / "journal" / "00000001.seg").write_bytes(segment)

    store = opened(tmp_path)
    first = store.get("0A1B2C3D4E")
    assert (first.state, first.attempts, first.pending_recipients()) == ("deferred", 1, [1, 2])
    assert [r.outcome for r in first.envelope.recipients] == [
        Outcome(SENT, "2.0.0", "250 2.0.0 Ok: queued as 9F8E7D"),
        Outcome(DEFERRED, "4.4.1", "connect to mx.example.net[192.0.2.1]:25: Connection refused"),
        Outcome(DEFERRED, "5.1.1", REFUSED.reason, remote=REFUSED.remote, reply=REFUSED.reply)]
    assert first.last_reason == "4.4.1 connect to mx.example.net[192.0.2.1]:25: Connection refused"
    second = store.get("5F6A7B8C9D")
    assert second.envelope.recipients[0].outcome == Outcome(
        DEFERRED, "4.4.2", "conversation with mx[192.0.2.1] timed out")
    assert store.read_content("5F6A7B8C9D") == content
    # A new attempt goes to a new (version 3) segment, as values.
    again = Outcome(DEFERRED, "4.4.1", "connect to mx.example.net[192.0.2.1]:25: Connection refused")
    store.record_results("0A1B2C3D4E", [], [2], [1], {1: again, 2: REFUSED}, 2e10)
    store.close()
    assert segment_files(tmp_path)[0] == "00000001.seg"
    store = opened(tmp_path)
    assert [r.outcome for r in store.get("0A1B2C3D4E").envelope.recipients][1:] == [again, REFUSED]
    store.close()

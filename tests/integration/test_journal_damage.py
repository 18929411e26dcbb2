"""A damaged record in the middle of the journal: after a restart every other
queued message is delivered to the smart host, and the damage is reported."""
import logging
import os

import gevent

import relayd
from relayd.queue.envelope import Envelope, Recipient
from relayd.queue.store import QueueStore


def test_a_restart_delivers_every_message_but_the_damaged_one(tmp_path, sink, caplog):
    queue_dir = tmp_path / "queue"
    store = QueueStore(str(queue_dir))
    store.open()
    offsets = []
    for n in range(6):
        offsets.append(os.path.getsize(queue_dir / "journal" / "00000001.seg"))
        qid = store.new_queue_id()
        writer = store.content_writer(qid)
        writer.write(f"Subject: m{n}\r\n\r\nbody {n}\r\n".encode())
        store.commit(qid, Envelope("s@example.org", [Recipient(f"m{n}@example.net")], 0.0),
                     writer)
    store.close()
    segment = queue_dir / "journal" / "00000001.seg"
    data = bytearray(segment.read_bytes())
    data[offsets[2]:offsets[2] + 40] = bytes(40)   # a zeroed block in the third record
    segment.write_bytes(data)

    with caplog.at_level(logging.WARNING, logger="relayd.queue"):
        relay = relayd.Relay(listen=[("127.0.0.1", 0)], queue_directory=str(queue_dir),
                             relayhost=f"[127.0.0.1]:{sink.port}")
        relay.start()
    try:
        with gevent.Timeout(20):
            while len(sink.messages) < 5:
                gevent.sleep(0.05)
    finally:
        relay.stop(timeout=5)
    assert sorted(m.recipients[0] for m in sink.messages) == [
        f"m{n}@example.net" for n in (0, 1, 3, 4, 5)]
    assert f"journal 00000001.seg: no record start at offset {offsets[2]}" in caplog.text
    assert (queue_dir / "corrupt" / f"00000001.seg.{offsets[2]}").exists()

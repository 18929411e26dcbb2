"""cleanup(8)'s message API (relayd/cleanup/message.py) on a real queue store:
what the SMTP dialogue hands over at DATA and what it gets back."""
import logging

import pytest

from relayd.cleanup.message import Cleanup, Queued
from relayd.config import load_config
from relayd.pipeline.verdicts import Bcc, Discard, Hold, Prepend
from relayd.queue.store import QueueStore
from relayd.smtp.replies import R451_QUEUE_WRITE_ERROR, R554_TOO_MANY_HOPS

MAIN_CF = ("myhostname = relay.example\nmydomain = example\nmyorigin = example\n"
           "mydestination =\nalias_maps =\nlocal_recipient_maps =\ninet_interfaces = 127.0.0.1\n"
           "hopcount_limit = 3\n")


@pytest.fixture
def cleanup(tmp_path):
    """``cleanup(main_cf)``: a Cleanup on an open queue store in tmp_path."""
    stores = []

    def make(extra: str = ""):
        store = QueueStore(str(tmp_path / "queue"))
        store.open()
        stores.append(store)
        return Cleanup(load_config(main_cf=MAIN_CF + extra), store)
    yield make
    for store in stores:
        store.close()


def message(cleanup, actions=(), client_addr="192.0.2.7", recipients=("bob@example.net",)):
    queue_id = cleanup.store.new_queue_id()
    return cleanup.open(queue_id=queue_id, sender="alice@example.org", params={"BODY": "7BIT"},
                        recipients=list(recipients), client_name="client.example",
                        client_addr=client_addr, helo="helo.example", protocol="ESMTP",
                        actions=list(actions))


def deliver(msg, data: bytes, actions=()):
    """Feed ``data`` in two pieces; end(); commit() when end() did not refuse."""
    msg.feed(data[:7])
    msg.feed(data[7:])
    refusal = msg.end(len(data))
    return refusal if refusal is not None else msg.commit(list(actions))


def test_received_and_prepend_go_first_and_the_message_is_committed(cleanup, caplog):
    c = cleanup()
    msg = message(c, actions=[Prepend("X-Policy: checked")])
    caplog.set_level(logging.INFO, logger="relayd.cleanup")
    data = b"Message-ID: <m1@example.org>\r\nSubject: hi\r\n\r\nbody\r\n"
    outcome = deliver(msg, data)
    assert isinstance(outcome, Queued) and not outcome.discarded
    assert (outcome.sender, outcome.recipients) == ("alice@example.org", ("bob@example.net",))
    assert outcome.message_id == "<m1@example.org>"
    assert f"{msg.queue_id}: message-id=<m1@example.org>" in caplog.messages
    stored = c.store.read_content(msg.queue_id)
    assert stored.startswith(b"Received: from helo.example (client.example [192.0.2.7])\r\n")
    assert b"\r\nX-Policy: checked\r\n" + data == stored[stored.index(b"\r\nX-Policy"):]
    assert outcome.size == len(stored)
    assert c.store.get(msg.queue_id).envelope.params == {"BODY": "7BIT"}


def test_too_many_hops_is_refused_at_the_end_and_nothing_is_queued(cleanup):
    c = cleanup()
    msg = message(c)
    data = b"Received: a\r\nReceived: b\r\nReceived: c\r\n\r\nbody\r\n"
    assert deliver(msg, data) == R554_TOO_MANY_HOPS
    assert c.store.get(msg.queue_id) is None


def test_discard_claims_delivery_and_hold_holds(cleanup):
    c = cleanup()
    msg = message(c)
    assert deliver(msg, b"Subject: x\r\n\r\n", [Discard("spam trap")]) == Queued(
        msg.queue_id, discarded=True)
    assert c.store.get(msg.queue_id) is None
    held = message(c)
    outcome = deliver(held, b"Subject: x\r\n\r\n", [Hold("look"), Bcc("audit@example.net")])
    assert outcome.recipients == ("bob@example.net", "audit@example.net")
    assert c.store.get(held.queue_id).state == "hold"


def test_local_clients_get_their_headers_rewritten(cleanup):
    c = cleanup()
    local = message(c, client_addr="127.0.0.1")
    deliver(local, b"From: alice\r\nTo: <bob@example.net>\r\n\r\nbody\r\n")
    assert b"\r\nFrom: alice@example\r\n" in c.store.read_content(local.queue_id)
    remote = message(c)
    deliver(remote, b"From: alice\r\n\r\nbody\r\n")
    assert b"\r\nFrom: alice\r\n" in c.store.read_content(remote.queue_id)


def test_header_checks_refusal_comes_back_from_end(cleanup, tmp_path):
    (tmp_path / "hc").write_text("/^Subject: spam/ REJECT no thanks\n")
    c = cleanup(f"header_checks = regexp:{tmp_path}/hc\n")
    refusal = deliver(message(c), b"Subject: spam\r\n\r\nbody\r\n")
    assert (refusal.code, refusal.text) == (550, "no thanks")


def test_a_header_rewriting_lookup_failure_is_a_temporary_refusal(cleanup, tmp_path, caplog):
    c = cleanup(f"canonical_maps = hash:{tmp_path}/missing\n")   # a table that cannot answer
    msg = message(c, client_addr="127.0.0.1")
    msg.feed(b"From: alice@example.org\r\n\r\nbody\r\n")
    with caplog.at_level(logging.WARNING, logger="relayd.cleanup"):
        assert msg.end(40) == R451_QUEUE_WRITE_ERROR      # refused before the commit
    assert any("header address rewriting failed" in m for m in caplog.messages)
    assert c.store.get(msg.queue_id) is None

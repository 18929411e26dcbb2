"""The queue manager with the real queue store, delivering to a real sink."""
import email
import email.policy
import logging
import time

import pytest

from relayd.delivery.qmgr import QueueManager
from tests.delivery.conftest import CONTENT, log_lines, queue_message, wait_until


class Clock:
    """A hand-moved clock for backoff and lifetime (deliveries use real sockets)."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def qmgr(store, config, clock):
    qmgr = QueueManager(store, config, clock=clock)
    qmgr.start()
    yield qmgr
    qmgr.stop(timeout=2)


def settled(store, qmgr):
    """True when nothing is queued as incoming or active and no delivery runs."""
    return not qmgr._in_flight and not store.messages("incoming") and not store.messages("active")


def parse(txn):
    return email.message_from_bytes(txn.data, policy=email.policy.default)


def dsn_fields(report):
    """The per-recipient fields of a DSN's message/delivery-status part."""
    status = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
    return [dict(block.items()) for block in status.get_payload()[1:]]


def test_message_delivered_and_removed(qmgr, store, sink, caplog):
    caplog.set_level(logging.INFO)
    qid = queue_message(store, "alice@example.com", ["bob@example.net"])
    wait_until(lambda: sink.messages, what="delivery")
    [txn] = sink.messages
    assert txn.recipients == ["bob@example.net"]
    wait_until(lambda: store.get(qid) is None, what="removal")
    qlog = log_lines(caplog, "relayd.qmgr")
    assert f"{qid}: from=<alice@example.com>, size={len(CONTENT)}, nrcpt=1 (queue active)" in qlog
    assert qlog[-1] == f"{qid}: removed"


def test_4xx_is_deferred_then_retried_when_sink_recovers(qmgr, store, sink, clock, config):
    sink.data_reply = "451 4.3.0 try later"
    qid = queue_message(store, "alice@example.com", ["bob@example.net"])
    wait_until(lambda: (m := store.get(qid)) and m.state == "deferred", what="deferral")
    message = store.get(qid)
    assert message.next_attempt == clock.now + config["minimal_backoff_time"]
    assert "451 4.3.0 try later" in message.last_reason
    assert sink.messages == []
    sink.data_reply = None
    clock.now += config["minimal_backoff_time"]
    qmgr.wake()
    wait_until(lambda: sink.messages and store.get(qid) is None, what="retry")
    assert sink.messages[0].recipients == ["bob@example.net"]


def test_5xx_bounces_with_dsn_delivered_to_sender(qmgr, store, sink, caplog):
    caplog.set_level(logging.INFO)
    sink.reply_for_rcpt = {"gone@example.net": "550 5.1.1 <gone@example.net>: User unknown"}
    qid = queue_message(store, "alice@example.com", ["bob@example.net", "gone@example.net"])
    wait_until(lambda: len(sink.messages) == 2 and settled(store, qmgr), what="delivery and DSN")
    original, bounce = sorted(sink.messages, key=lambda t: t.sender == "")
    assert original.recipients == ["bob@example.net"]
    assert (bounce.sender, bounce.recipients) == ("", ["alice@example.com"])
    report = parse(bounce)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert report["Auto-Submitted"] == "auto-replied"
    [fields] = dsn_fields(report)
    assert fields["Final-Recipient"] == "rfc822; gone@example.net"
    assert (fields["Action"], fields["Status"]) == ("failed", "5.1.1")
    assert fields["Diagnostic-Code"] == "smtp; 550 5.1.1 <gone@example.net>: User unknown"
    headers = next(p for p in report.walk() if p.get_content_type() == "text/rfc822-headers")
    assert "Message-ID: <m1@example.com>" in headers.get_content()
    notices = [line for line in log_lines(caplog, "relayd.bounce") if "non-delivery" in line]
    assert len(notices) == 1 and notices[0].startswith(f"{qid}: sender non-delivery notification: ")
    assert store.messages() == []


def test_no_bounce_for_null_sender(qmgr, store, sink):
    sink.reply_for_rcpt = {"gone@example.net": "550 5.1.1 User unknown"}
    qid = queue_message(store, "", ["gone@example.net"])
    wait_until(lambda: store.get(qid) is None and settled(store, qmgr), what="bounce")
    assert sink.messages == [] and store.messages() == []


def test_partial_success_retries_only_the_deferred_recipient(qmgr, store, sink, clock, config):
    sink.reply_for_rcpt = {"busy@example.net": "450 4.2.1 Mailbox busy"}
    qid = queue_message(store, "alice@example.com", ["a@example.net", "busy@example.net", "c@example.net"])
    wait_until(lambda: (m := store.get(qid)) and m.state == "deferred", what="deferral")
    assert store.get(qid).pending_recipients() == [1]
    assert sink.messages[0].recipients == ["a@example.net", "c@example.net"]
    sink.reply_for_rcpt = {}
    clock.now += config["minimal_backoff_time"]
    qmgr.wake()
    wait_until(lambda: len(sink.messages) == 2 and store.get(qid) is None, what="retry")
    assert sink.messages[1].recipients == ["busy@example.net"]


def test_sink_down_defers_with_backoff(qmgr, store, sink, clock, config, caplog):
    caplog.set_level(logging.INFO)
    sink.stop()
    arrival = clock.now - 1000      # queued 1000 s ago: Postfix backs off by the time in queue
    qid = queue_message(store, "alice@example.com", ["bob@example.net"], arrival=arrival)
    wait_until(lambda: (m := store.get(qid)) and m.state == "deferred", what="deferral")
    message = store.get(qid)
    assert message.next_attempt == clock.now + 1000
    assert "Connection refused" in message.last_reason
    [line] = [x for x in log_lines(caplog, "relayd.smtp") if x.startswith(qid)]
    assert ", relay=none, " in line and "status=deferred (connect to 127.0.0.1[127.0.0.1]" in line
    clock.now += 1000
    qmgr.wake()
    wait_until(lambda: store.get(qid).attempts == 2 and settled(store, qmgr), what="second attempt")
    # arrival 2000 s ago, so the next backoff doubles; capped by maximal_backoff_time later
    assert store.get(qid).next_attempt == clock.now + 2000


def test_expired_message_is_returned_to_sender(qmgr, store, sink, clock, config, caplog):
    caplog.set_level(logging.INFO)
    sink.stop()
    arrival = clock.now - config["maximal_queue_lifetime"] - 1
    qid = queue_message(store, "alice@example.com", ["bob@example.net"], arrival=arrival)
    wait_until(lambda: store.get(qid) is None and store.messages("deferred"), what="expiry")
    assert f"{qid}: from=<alice@example.com>, status=expired, returned to sender" in log_lines(caplog, "relayd.qmgr")
    [dsn] = store.messages()
    assert (dsn.envelope.sender, [r.address for r in dsn.envelope.recipients]) == ("", ["alice@example.com"])
    sink.start()
    qmgr.flush()
    wait_until(lambda: sink.messages and not store.messages(), what="DSN delivery")
    [fields] = dsn_fields(parse(sink.messages[0]))
    assert (fields["Action"], fields["Status"]) == ("failed", "4.4.1")
    assert "Connection refused" in fields["Diagnostic-Code"]


def test_destination_concurrency_limit(store, config, sink):
    config = config.with_overrides({"default_destination_concurrency_limit": 2})
    qmgr = QueueManager(store, config)
    try:
        for n in range(10):
            queue_message(store, "alice@example.com", [f"user{n}@example.net"])
        qmgr.start()
        wait_until(lambda: len(sink.messages) == 10, what="10 deliveries")
    finally:
        qmgr.stop(timeout=2)
    assert sink.max_concurrent == 2
    assert sink.sessions == 2     # and each of the two connections was reused


@pytest.mark.parametrize("relayhost, reason", [
    # The reason outlives the except block that named the error (it used to
    # raise NameError in the delivery pool and leave the message active).
    ("[mx.example", "bad relayhost: bad next-hop '[mx.example': unbalanced brackets"),
])
def test_a_bad_relayhost_defers_with_its_reason(store, config, sink, caplog, relayhost,
                                                     reason):
    caplog.set_level(logging.INFO)
    config = config.with_overrides({"relayhost": relayhost})
    qmgr = QueueManager(store, config)
    qmgr.start()
    try:
        qid = queue_message(store, "alice@example.com", ["bob@example.net"])
        wait_until(lambda: (m := store.get(qid)) and m.state == "deferred", what="deferral")
    finally:
        qmgr.stop(timeout=2)
    [line] = [x for x in log_lines(caplog, "relayd.qmgr") if "to=<" in x]
    assert line.endswith(f"dsn=4.4.1, status=deferred ({reason})")
    assert sink.sessions == 0
    assert store.get(qid).last_reason == f"4.4.1 {reason}"


def test_dsn_that_cannot_be_built_keeps_the_attempts_results(qmgr, store, sink, monkeypatch, caplog):
    """A mock, because no real input makes the builder fail any more (a
    next hop's UTF-8 reply used to: tests/queue/test_bounce.py): the
    delivered recipient stays delivered, the bounced one is kept for a retry."""
    def broken(*args, **kw):
        raise UnicodeEncodeError("ascii", "ö", 0, 1, "ordinal not in range(128)")
    monkeypatch.setattr("relayd.delivery.qmgr.build_dsn", broken)
    sink.reply_for_rcpt = {"gone@example.net": "550 5.1.1 User unknown"}
    qid = queue_message(store, "alice@example.com", ["bob@example.net", "gone@example.net"])
    wait_until(lambda: (m := store.get(qid)) and m.state == "deferred", what="deferral")
    assert store.get(qid).pending_recipients() == [1]
    assert [t.recipients for t in sink.messages] == [["bob@example.net"]]
    assert "cannot queue the non-delivery notification" in caplog.text

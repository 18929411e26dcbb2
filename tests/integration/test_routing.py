"""Routing through a real relayd to real sinks on other loopback addresses:
transport_maps, sender-dependent relayhosts, the fallback relay and the
per-destination limits (docs/routing.md). The MX tests are in test_mx_delivery.py."""
import smtplib

import pytest

from tests.support.relayd_proc import free_port
from tests.support.sink import Sink


def send(relayd, sender, recipients, subject="routing"):
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.sendmail(sender, recipients, f"Subject: {subject}\r\n\r\nhello\r\n".encode())


@pytest.fixture
def sink2():
    """A second sink, on 127.0.0.2 (Linux routes all of 127/8 to lo)."""
    s = Sink(host="127.0.0.2").start()
    yield s
    s.stop()


def line_for(log, recipient):
    """The delivery log line of ``recipient``."""
    return next(line for line in log.splitlines() if f"to=<{recipient}>" in line and "status=" in line)


def test_transport_maps_each_result_kind(relayd_factory, sink, sink2, tmp_path):
    table = tmp_path / "transport"
    table.write_text(f"special@a.test      smtp:[127.0.0.2]:{sink2.port}\n"
                     "err.test            error:5.7.1 closed for good\n"
                     "later.test          retry:4.2.0 come back next week\n"
                     "drop.test           discard:\n"
                     "home.test           local:\n")
    relayd = relayd_factory(f"transport_maps = texthash:{table}\nalias_maps =\n"
                            f"relayd_maildir_base = {tmp_path}/mail\n")
    send(relayd, "alice@example.org", ["special@a.test", "other@a.test", "x@err.test",
                                       "y@later.test", "z@drop.test", "bob@home.test"])
    (special,) = sink2.wait_for(1)
    assert special.recipients == ["special@a.test"]
    log = relayd.wait_log("sender non-delivery notification")
    assert f"relay=127.0.0.2[127.0.0.2]:{sink2.port}" in line_for(log, "special@a.test")
    assert f"relay=127.0.0.1[127.0.0.1]:{sink.port}" in line_for(log, "other@a.test")
    assert line_for(log, "x@err.test").endswith("dsn=5.7.1, status=bounced (closed for good)")
    assert line_for(log, "y@later.test").endswith(
        "dsn=4.2.0, status=deferred (come back next week)")
    assert line_for(log, "z@drop.test").endswith("dsn=2.0.0, status=sent (drop.test)")
    assert "status=sent (delivered to maildir)" in line_for(log, "bob@home.test")
    assert list((tmp_path / "mail" / "bob" / "Maildir" / "new").iterdir())
    # other@a.test and the DSN for x@err.test went to the relayhost.
    messages = sink.wait_for(2)
    assert sorted(m.recipients[0] for m in messages) == ["alice@example.org", "other@a.test"]


def test_transport_maps_that_cannot_answer_defers(relayd_factory, sink, tmp_path):
    relayd = relayd_factory(f"transport_maps = hash:{tmp_path}/missing\n")
    send(relayd, "alice@example.org", ["bob@a.test"])
    log = relayd.wait_log("status=deferred")
    assert line_for(log, "bob@a.test").endswith(
        "dsn=4.3.0, status=deferred (address resolver failure)")
    assert "transport_maps lookup failure" in log
    assert sink.sessions == 0


def test_sender_dependent_relayhost(relayd_factory, sink, sink2, tmp_path):
    table = tmp_path / "senders"
    table.write_text(f"@customer.test   [127.0.0.2]:{sink2.port}\n")
    relayd = relayd_factory(f"sender_dependent_relayhost_maps = texthash:{table}\n")
    send(relayd, "ann@customer.test", ["r1@a.test"])
    send(relayd, "ann@other.test", ["r2@a.test"])
    assert [m.recipients for m in sink2.wait_for(1)] == [["r1@a.test"]]
    assert [m.recipients for m in sink.wait_for(1)] == [["r2@a.test"]]


def test_fallback_relay_takes_mail_the_relayhost_cannot(relayd_factory, sink, tmp_path):
    dead = free_port()   # nothing listens there
    relayd = relayd_factory(f"relayhost = [127.0.0.2]:{dead}\n"
                            f"smtp_fallback_relay = [127.0.0.1]:{sink.port}\n")
    send(relayd, "alice@example.org", ["bob@a.test"])
    (msg,) = sink.wait_for(1)
    assert msg.recipients == ["bob@a.test"]
    log = relayd.wait_log("status=sent")
    assert f"connect to 127.0.0.2[127.0.0.2]:{dead}: Connection refused" in log
    assert f"relay=127.0.0.1[127.0.0.1]:{sink.port}" in line_for(log, "bob@a.test")


def test_without_fallback_an_unreachable_relayhost_defers(relayd_factory, sink):
    dead = free_port()
    relayd = relayd_factory(f"relayhost = [127.0.0.2]:{dead}\n")
    send(relayd, "alice@example.org", ["bob@a.test"])
    line = line_for(relayd.wait_log("status=deferred"), "bob@a.test")
    assert line.endswith(f"dsn=4.4.1, status=deferred (connect to 127.0.0.2[127.0.0.2]:{dead}: "
                         "Connection refused)")


def test_destination_concurrency_limit_holds_across_the_workers(relayd_factory, sink):
    """Two workers share smtp_destination_concurrency_limit = 2 (one each): a
    slow next hop never sees more than 2 sessions, with 8 messages queued at once."""
    sink.data_delay = 0.3
    relayd = relayd_factory("relayd_worker_processes = 2\n"
                            "smtp_destination_concurrency_limit = 2\n")
    for n in range(8):
        send(relayd, "alice@example.org", [f"r{n}@a.test"])
    assert len(sink.wait_for(8, timeout=30)) == 8
    assert 1 <= sink.max_concurrent <= 2


def test_destination_recipient_limit_splits_a_message(relayd_factory, sink):
    relayd = relayd_factory("smtp_destination_recipient_limit = 2\n")
    send(relayd, "alice@example.org", [f"r{n}@a.test" for n in range(5)])
    messages = sink.wait_for(3)
    assert sorted(len(m.recipients) for m in messages) == [1, 2, 2]


def test_destination_rate_delay_spaces_deliveries_across_the_workers(relayd_factory, sink):
    relayd = relayd_factory("relayd_worker_processes = 2\nsmtp_destination_rate_delay = 1s\n")
    for n in range(3):
        send(relayd, "alice@example.org", [f"r{n}@a.test"])
    times = sorted(m.mail_time for m in sink.wait_for(3, timeout=30))
    # Each delivery starts at least the delay after the one before (a little
    # less between MAIL commands when only one of them had to connect first).
    assert all(b - a > 0.75 for a, b in zip(times, times[1:])), times

"""mailq and the postsuper-like queue operations against a running relayd."""
import re

from tests.integration.test_relay_path import send


def test_mailq_hold_release_requeue_delete(relayd_factory, sink):
    sink.stop()  # the smart host is down: the message stays deferred
    relayd = relayd_factory("minimal_backoff_time = 300s\nmaximal_backoff_time = 600s\n")
    send(relayd, "alice@example.org", ["bob@relay.example"], b"Subject: queued\r\n\r\nhi\r\n")
    relayd.wait_log("status=deferred")

    listing = relayd.command("mailq").stdout
    m = re.search(r"^([0-9A-F]{12})\s+(\d+) \w{3} \w{3} [ \d]\d [\d:]{8}  alice@example.org$",
                  listing, re.M)
    assert m, listing
    queue_id = m.group(1)
    assert "(connect to 127.0.0.1[127.0.0.1]" in listing
    assert re.search(r"^ {41}bob@relay.example$", listing, re.M)
    assert listing.rstrip().endswith("-- 0 Kbytes in 1 Request.")

    result = relayd.command("queue", "hold", queue_id)
    assert "Placed on hold: 1 message" in result.stderr
    assert f"{queue_id}!" in relayd.command("mailq").stdout

    sink.start()
    assert "Released from hold: 1 message" in relayd.command("queue", "release", queue_id).stderr
    assert "Requeued: 1 message" in relayd.command("queue", "requeue", queue_id).stderr
    (msg,) = sink.wait_for(1, timeout=15)
    assert msg.recipients == ["bob@relay.example"]
    relayd.wait_log(f"{queue_id}: removed")
    assert relayd.command("mailq").stdout == "Mail queue is empty\n"


def test_delete_removes_a_message_for_good(relayd_factory, sink):
    sink.stop()
    relayd = relayd_factory("minimal_backoff_time = 300s\nmaximal_backoff_time = 600s\n")
    send(relayd, "a@example.org", ["b@relay.example"], b"Subject: doomed\r\n\r\nx\r\n")
    relayd.wait_log("status=deferred")
    assert "Deleted: 1 message" in relayd.command("queue", "delete", "ALL").stderr
    assert relayd.command("mailq").stdout == "Mail queue is empty\n"
    relayd.stop()
    relayd.start()  # rebuilt from disk alone: still gone
    assert relayd.command("mailq").stdout == "Mail queue is empty\n"


def test_mailq_when_relayd_is_down(tmp_path, sink):
    from tests.support.relayd_proc import RelaydProcess
    result = RelaydProcess(tmp_path / "down", sink.port).command("mailq")
    assert result.returncode == 69 and "mail system is down" in result.stderr

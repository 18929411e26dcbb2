"""Unit tests of the delivery building blocks: delays, next hops, the pool, DSNs."""
import dataclasses
import email
import email.policy
import re

import gevent
import pytest

from relayd.delivery.pool import DeliveryPool
from relayd.delivery.route import parse_nexthop
from relayd.delivery.status import format_delay
from relayd.queue.bounce import DELAYED, build_dsn
from relayd.queue.envelope import Envelope, Recipient
from relayd.queue.outcome import BOUNCED, DEFERRED, Outcome, from_text
from relayd.queue.state import QueuedMessage


@pytest.mark.parametrize("seconds, text", [(0, "0"), (0.0123, "0.01"), (0.004, "0"), (0.25, "0.25"),
                                           (1.234, "1.2"), (0.999, "1"), (12.3, "12"), (123.4, "123"),
                                           (0.004999, "0"), (0.005, "0.01"), (0.05, "0.05"),
                                           (0.1, "0.1"), (0.104999, "0.1"), (0.105, "0.11"),
                                           (0.994999, "0.99"), (0.995, "1"), (1.0, "1"),
                                           (1.05, "1.1"), (9.96, "10"), (-0.5, "0")])
def test_delays_formatted_like_postfix_format_tv(seconds, text):
    assert format_delay(seconds) == text


@pytest.mark.parametrize("nexthop, host, port, mx", [
    ("[mail.isp.example]", "mail.isp.example", 25, False),
    ("[mail.isp.example]:submission", "mail.isp.example", 587, False),
    ("mail.isp.example:2525", "mail.isp.example", 2525, True),
    ("mail.isp.example", "mail.isp.example", 25, True),
    ("[::1]:2525", "::1", 2525, False)])
def test_relayhost_forms(nexthop, host, port, mx):
    dest = parse_nexthop(nexthop)
    assert (dest.host, dest.port, dest.mx_lookup, dest.nexthop) == (host, port, mx, nexthop)


@pytest.mark.parametrize("bad", ["[mail", "[]", ":25", "mail:99999", "mail:nosuchservice"])
def test_bad_relayhost(bad):
    with pytest.raises(ValueError):
        parse_nexthop(bad)


def test_pool_limits_per_destination_and_overall():
    pool = DeliveryPool(destination_limit=2, process_limit=3)
    running, peaks, done = {}, {"all": 0}, []

    def job(dest, n):
        def run():
            running[dest] = running.get(dest, 0) + 1
            peaks[dest] = max(peaks.get(dest, 0), running[dest])
            peaks["all"] = max(peaks["all"], sum(running.values()))
            gevent.sleep(0.01)
            running[dest] -= 1
            done.append((dest, n))
        return run

    for n in range(6):
        for dest in ("a", "b"):
            pool.submit(dest, job(dest, n))
    assert pool.join(timeout=5)
    assert len(done) == 12
    assert peaks["a"] == 2 and peaks["b"] <= 2 and peaks["all"] == 3


def test_pool_survives_a_failing_job():
    pool = DeliveryPool(1, 1)
    done = []
    pool.submit("a", lambda: 1 / 0)
    pool.submit("a", lambda: done.append(1))
    assert pool.join(timeout=5) and done == [1]


GONE = Outcome(BOUNCED, "5.1.1", "host mx.example.net[192.0.2.1] said: 550 5.1.1 No such user "
                                 "(in reply to RCPT TO command)",
               "mx.example.net[192.0.2.1]:25", "mx.example.net", "550 5.1.1 No such user")
LATE = Outcome(DEFERRED, "4.4.1", "connect to mx.example.net[192.0.2.1]:25: Connection refused")


def message(gone=GONE, late=LATE):
    env = Envelope("alice@example.com", [
        Recipient("gone@example.net", None, "bounced", gone),
        Recipient("ok@example.net"),
        Recipient("late@example.net", "Late@Example.NET", "deferred", late)],
        1700000000.0)
    return QueuedMessage("4F1A2B3C4D5E", env, "active")


ORIGINAL = (b"From: alice@example.com\r\nSubject: hello\r\nX-Long: " + b"x" * 200 +
            b"\r\n\r\nbody\r\n..dotted\r\n")


def content(part):
    """A text part's content with the wire form's CRLF turned into "\\n"."""
    return part.get_content().replace("\r\n", "\n")


def test_dsn_is_wire_form_multipart_report():
    wire = build_dsn(message(), [0, 2], ORIGINAL, myhostname="relay.example.com")
    assert wire.endswith(b"\r\n") and b"\n" not in wire.replace(b"\r\n", b"")
    assert not any(line.startswith(b".") and not line.startswith(b"..") for line in wire.split(b"\r\n"))
    report = email.message_from_bytes(wire, policy=email.policy.default)
    assert b"\r\nFrom: MAILER-DAEMON@relay.example.com (Mail Delivery System)\r\n" in wire
    assert report["To"] == "alice@example.com"
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert report.get_content_type() == "multipart/report"
    text, status, headers = report.get_payload()
    assert content(text).startswith("This is the mail system at host relay.example.com.\n")
    assert "<gone@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1 No such user" in content(text)
    per_message, gone, late = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; relay.example.com"
    assert per_message["X-Postfix-Queue-ID"] == "4F1A2B3C4D5E"
    assert dict(gone.items()) == {"Final-Recipient": "rfc822; gone@example.net",
                                  "Original-Recipient": "rfc822; gone@example.net",
                                  "Action": "failed", "Status": "5.1.1",
                                  "Remote-MTA": "dns; mx.example.net",
                                  "Diagnostic-Code": "smtp; 550 5.1.1 No such user"}
    assert late["Original-Recipient"] == "rfc822; Late@Example.NET"
    assert late["Status"] == "4.4.1"
    assert late["Diagnostic-Code"] == "X-Postfix; connect to mx.example.net[192.0.2.1]:25: Connection refused"
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: hello" in content(headers) and "body" not in content(headers)


def test_outcomes_of_an_older_queue_give_the_same_notification():
    """Queues written before outcomes were values kept "<dsn> <reason>" text;
    read back, it gives the DSN the fields give."""
    old = message(from_text(BOUNCED, str(GONE)), from_text(DEFERRED, str(LATE)))
    assert old.envelope.recipients[0].outcome == dataclasses.replace(GONE, relay="none")
    unstable = re.compile(rb"^(Date|Message-Id): .*$|=+[0-9]+==", re.M)
    assert unstable.sub(b"", build_dsn(old, [0, 2], ORIGINAL, myhostname="relay.example.com")) == \
        unstable.sub(b"", build_dsn(message(), [0, 2], ORIGINAL, myhostname="relay.example.com"))


def test_delay_notice_wording():
    wire = build_dsn(message(), [2], ORIGINAL, myhostname="relay.example.com", reason_kind=DELAYED)
    report = email.message_from_bytes(wire, policy=email.policy.default)
    assert report["Subject"] == "Delayed Mail (still being retried)"
    assert "THIS IS A WARNING ONLY" in content(report.get_payload()[0])
    assert report.get_payload()[1].get_payload()[1]["Action"] == "delayed"

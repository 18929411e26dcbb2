"""A smart host that refuses recipients at RCPT TO (issue 7, item 1).

relayd (a real process) relays to the recording sink, which answers RCPT TO
as told. As Postfix's smtp(8) does: a 5xx to RCPT bounces that recipient at
once (a DSN to the sender, status=bounced with the remote reply in the log,
the message leaves the queue), the recipients the server took are delivered,
and a 4xx to RCPT defers, never bounces.
"""
import email
import re
import smtplib
import time

REFUSAL = "550 5.1.1 <gone@relay.example>: Recipient address rejected: User unknown"


def send(relayd, recipients, message_id):
    data = (f"From: alice@example.org\r\nSubject: refused\r\nMessage-ID: <{message_id}>\r\n"
            f"\r\nhello\r\n").encode()
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.sendmail("alice@example.org", recipients, data)


def queue_id_of(log, message_id):
    match = re.search(r"(\w+): message-id=<" + re.escape(message_id) + ">", log)
    assert match, log
    return match.group(1)


def dsn_parts(msg):
    """(human-readable text, delivery-status text, returned headers) of a DSN."""
    report = email.message_from_bytes(msg.data)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    human, status, returned = report.get_payload()
    return (human.get_payload(decode=True).decode(),
            "".join(str(part) for part in status.get_payload()),
            returned.get_payload() if returned.is_multipart() else str(returned))


def test_only_recipient_refused_bounces_at_once(relayd, sink):
    sink.reply_for_rcpt["gone@relay.example"] = REFUSAL
    send(relayd, ["gone@relay.example"], "refused-1@example.org")
    (dsn,) = sink.wait_for(1, timeout=15)
    # The DSN goes from the null sender to the original sender, through the smart host.
    assert dsn.sender == "" and dsn.recipients == ["alice@example.org"]
    human, status, returned = dsn_parts(dsn)
    assert "could not\nbe delivered" in human.replace("\r\n", "\n")
    assert "Final-Recipient: rfc822; gone@relay.example" in status
    assert "Action: failed" in status and "Status: 5.1.1" in status
    assert "Diagnostic-Code: smtp; " + REFUSAL in status
    assert "Message-ID: <refused-1@example.org>" in returned
    log = relayd.log()
    qid = queue_id_of(log, "refused-1@example.org")
    line = next(x for x in log.splitlines() if f"{qid}: to=<gone@relay.example>" in x)
    assert "status=bounced (host 127.0.0.1[127.0.0.1] said: " + REFUSAL in line
    assert "(in reply to RCPT TO command)" in line
    relayd.wait_log(f"{qid}: removed")
    assert "Traceback" not in relayd.log()
    assert "status=deferred" not in relayd.log()
    # Nothing is left in the queue: no retry, no second DSN.
    listing = relayd.command("mailq")
    assert listing.returncode == 0 and qid not in listing.stdout, listing


def test_some_recipients_refused_only_those_bounce(relayd, sink):
    sink.reply_for_rcpt["gone@relay.example"] = REFUSAL
    send(relayd, ["ok1@relay.example", "gone@relay.example", "ok2@relay.example"],
         "refused-2@example.org")
    messages = sink.wait_for(2, timeout=15)
    delivered = next(m for m in messages if m.sender == "alice@example.org")
    dsn = next(m for m in messages if m.sender == "")
    assert delivered.recipients == ["ok1@relay.example", "ok2@relay.example"]
    _, status, _ = dsn_parts(dsn)
    assert "Final-Recipient: rfc822; gone@relay.example" in status
    assert "ok1@relay.example" not in status and "ok2@relay.example" not in status
    log = relayd.log()
    qid = queue_id_of(log, "refused-2@example.org")
    assert re.search(qid + r": to=<ok1@relay.example>.*status=sent", log)
    assert re.search(qid + r": to=<gone@relay.example>.*status=bounced", log)
    relayd.wait_log(f"{qid}: removed")


def test_temporary_refusal_at_rcpt_defers(relayd, sink):
    sink.reply_for_rcpt["later@relay.example"] = "450 4.2.0 <later@relay.example>: try again"
    send(relayd, ["later@relay.example"], "refused-3@example.org")
    log = relayd.wait_log("status=deferred", timeout=15)
    qid = queue_id_of(log, "refused-3@example.org")
    assert re.search(qid + r": to=<later@relay.example>.*status=deferred \(host 127.0.0.1"
                     r"\[127.0.0.1\] said: 450 4.2.0 <later@relay.example>: try again "
                     r"\(in reply to RCPT TO command\)", log), log
    assert "status=bounced" not in log and "Traceback" not in log
    assert sink.messages == []
    # Still queued; once the server takes the recipient the message goes out.
    del sink.reply_for_rcpt["later@relay.example"]
    (msg,) = sink.wait_for(1, timeout=15)
    assert msg.recipients == ["later@relay.example"]
    assert "status=bounced" not in relayd.wait_log(f"{qid}: removed", timeout=15)


def test_soft_bounce_keeps_a_refused_recipient_queued_without_a_dsn(relayd_factory, sink):
    # Postfix's bounce_append() under soft_bounce: the next hop's 550 is a
    # deferral (dsn 4.X.X, logged status=SOFTBOUNCE); no DSN, the mail stays.
    relayd = relayd_factory("soft_bounce = yes\n")
    sink.reply_for_rcpt["gone@relay.example"] = REFUSAL
    send(relayd, ["gone@relay.example", "ok@relay.example"], "soft-1@example.org")
    log = relayd.wait_log("status=SOFTBOUNCE", timeout=15)
    qid = queue_id_of(log, "soft-1@example.org")
    # A second attempt (the backoff is 1-2 s here) finds it still queued.
    deadline = time.monotonic() + 15
    while log.count(f"{qid}: to=<gone@relay.example>") < 2:
        assert time.monotonic() < deadline, log
        time.sleep(0.1)
        log = relayd.log()
    assert re.search(qid + r": to=<gone@relay.example>, relay=127.0.0.1\[127.0.0.1\]:\d+, .*"
                     r"dsn=4.1.1, status=SOFTBOUNCE \(host 127.0.0.1\[127.0.0.1\] said: "
                     + re.escape(REFUSAL) + r" \(in reply to RCPT TO command\)\)", log), log
    assert re.search(qid + r": to=<ok@relay.example>, .*status=sent", log), log
    assert "status=bounced" not in log and "non-delivery notification" not in log
    assert f"{qid}: removed" not in log
    # Only the accepted recipient's copy reached the sink: no DSN.
    assert [(m.sender, m.recipients) for m in sink.messages] == [
        ("alice@example.org", ["ok@relay.example"])]
    listing = relayd.command("mailq")
    assert qid in listing.stdout and "gone@relay.example" in listing.stdout, listing
    assert "ok@relay.example" not in listing.stdout

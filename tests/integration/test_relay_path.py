"""The core path over real sockets: client -> relayd process -> recording sink."""
import email
import os
import pwd
import smtplib
import socket
import subprocess

import pytest

from relayd.smtp import replies as R


def send(relayd, sender, recipients, data, **kw):
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        return client.sendmail(sender, recipients, data, **kw)


def dialogue(port, lines, read_greeting=True, timeout=10):
    """Send raw ``lines`` (bytes) in one write; return everything read until EOF/timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if read_greeting:
            s.recv(1024)
        s.sendall(lines)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            pass
        return b"".join(chunks)


MESSAGE = (b"From: Alice <alice@example.org>\r\n"
           b"To: Bob <bob@relay.example>\r\n"
           b"Subject: core path\r\n"
           b"Message-ID: <core-path-1@example.org>\r\n"
           b"\r\n"
           b"Hello Bob,\r\n"
           b".a line that starts with a dot\r\n"
           b"..two dots\r\n"
           b".\r\n"
           b"bye\r\n")


def test_message_arrives_byte_identical_apart_from_received(relayd, sink):
    send(relayd, "alice@example.org", ["bob@relay.example"], MESSAGE)
    (msg,) = sink.wait_for(1)
    assert msg.sender == "alice@example.org"
    assert msg.recipients == ["bob@relay.example"]
    received, sep, rest = msg.data.partition(b"\r\nFrom: ")
    assert received.startswith(b"Received: from ")
    assert b"by relayd.test (relayd) with ESMTP id " in received
    assert b"for <bob@relay.example>" in received
    assert b"From: " + rest == MESSAGE
    log = relayd.wait_log("status=sent")
    assert "message-id=<core-path-1@example.org>" in log
    assert "relayd/qmgr[" in log and "(queue active)" in log


def test_dot_stuffing_round_trips(relayd, sink):
    body = b"Subject: dots\r\n\r\n.\r\n..\r\n...\r\n. x\r\nend\r\n"
    send(relayd, "a@example.org", ["b@relay.example"], body)
    (msg,) = sink.wait_for(1)
    assert msg.data.endswith(body)
    # On the wire to the smart host every leading dot is stuffed again.
    assert b"\r\n..\r\n...\r\n....\r\n.. x\r\n" in msg.raw


def test_queued_reply_names_the_queue_id(relayd, sink):
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.ehlo("client.example")
        client.mail("a@example.org")
        client.rcpt("b@relay.example")
        code, text = client.data(b"Subject: x\r\n\r\nhi\r\n")
    assert code == 250
    assert text.decode().startswith("2.0.0 Ok: queued as ")
    queue_id = text.decode().rsplit(" ", 1)[1]
    log = relayd.wait_log(f"{queue_id}: removed")
    assert f"{queue_id}: client=unknown[127.0.0.1]" in log


def test_swaks_with_pipelining(relayd, sink):
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{relayd.port}", "--from", "swaks@example.org",
         "--to", "one@relay.example,two@relay.example", "--pipeline",
         "--header", "Subject: from swaks", "--body", "swaks body"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    (msg,) = sink.wait_for(1)
    assert msg.recipients == ["one@relay.example", "two@relay.example"]
    assert b"Subject: from swaks" in msg.data


def test_pipelined_replies_come_in_order_in_one_write(relayd, sink):
    out = dialogue(relayd.port, b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\n"
                                b"RCPT TO:<b@relay.example>\r\nRCPT TO:<c@relay.example>\r\n"
                                b"DATA\r\nSubject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    codes = [line[:3] for line in out.split(b"\r\n") if line[3:4] == b" "]
    assert codes == [b"250", b"250", b"250", b"250", b"354", b"250", b"221"]
    (msg,) = sink.wait_for(1)
    assert msg.recipients == ["b@relay.example", "c@relay.example"]


def test_ehlo_advertises_the_core_extensions(relayd):
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        code, _ = client.ehlo("c.example")
        assert code == 250
        for keyword in ("pipelining", "size", "8bitmime", "enhancedstatuscodes"):
            assert client.has_extn(keyword), keyword
        assert client.esmtp_features["size"] == "10240000"


def test_eight_bit_body_is_passed_on_with_body_8bitmime(relayd, sink):
    body = "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode()
    send(relayd, "a@example.org", ["b@relay.example"], body, mail_options=["BODY=8BITMIME"])
    (msg,) = sink.wait_for(1)
    assert msg.data.endswith(body)
    assert "BODY=8BITMIME" in msg.params.upper()


def test_smart_host_5xx_bounces_to_the_sender(relayd, sink):
    sink.reply_for_rcpt = {"nobody@relay.example": "550 5.1.1 <nobody@relay.example>: no such user"}
    send(relayd, "alice@example.org", ["nobody@relay.example", "bob@relay.example"],
         b"Subject: partly bad\r\n\r\nhello\r\n")
    first, dsn = sink.wait_for(2, timeout=15)
    assert first.recipients == ["bob@relay.example"]
    assert dsn.sender == "" and dsn.recipients == ["alice@example.org"]
    report = email.message_from_bytes(dsn.data)
    assert report.get_content_type() == "multipart/report"
    status = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"][0]
    text = status.as_string()
    assert "nobody@relay.example" in text and "5.1.1" in text and "Action: failed" in text
    assert "status=bounced" in relayd.wait_log("sender non-delivery notification")


def test_smart_host_down_defers_then_delivers_after_flush(relayd_factory, sink):
    sink.stop()
    relayd = relayd_factory("minimal_backoff_time = 300s\nmaximal_backoff_time = 600s\n")
    send(relayd, "a@example.org", ["b@relay.example"], b"Subject: later\r\n\r\nhi\r\n")
    relayd.wait_log("status=deferred")
    sink.start()
    result = relayd.command("flush")
    assert result.returncode == 0, result.stderr
    (msg,) = sink.wait_for(1, timeout=15)
    assert msg.recipients == ["b@relay.example"]
    relayd.wait_log("status=sent")


def test_flush_when_relayd_is_down_says_so(tmp_path, sink):
    from tests.support.relayd_proc import RelaydProcess
    stopped = RelaydProcess(tmp_path / "down", sink.port)
    result = stopped.command("flush")
    assert result.returncode != 0
    assert "mail system is down" in result.stderr


def test_vrfy_never_reveals_users_and_expn_is_not_supported(relayd):
    out = dialogue(relayd.port, b"EHLO c\r\nVRFY root\r\nEXPN staff\r\nQUIT\r\n")
    assert R.R252_VRFY.format("root").to_bytes() in out
    assert R.R500_UNRECOGNIZED.to_bytes() in out


def test_vrfy_can_be_disabled(relayd_factory):
    relayd = relayd_factory("disable_vrfy_command = yes\n")
    out = dialogue(relayd.port, b"VRFY root\r\nQUIT\r\n")
    assert R.R502_VRFY_DISABLED.to_bytes() in out


def test_bad_config_value_stops_startup_with_status_78(tmp_path, sink):
    from tests.support.relayd_proc import RelaydProcess
    proc = RelaydProcess(tmp_path / "bad", sink.port, "message_size_limit = 10M\n")
    with pytest.raises(RuntimeError, match="message_size_limit"):
        proc.start()
    assert proc.proc.returncode == 78
    assert "main.cf, line" in proc.log()


def test_http_request_is_refused_after_answering_what_was_pipelined_before(relayd):
    out = dialogue(relayd.port, b"NOOP\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(R.R250_OK.to_bytes())
    assert out[len(R.R250_OK.to_bytes()):] == R.R221_BREAK_RULES.to_bytes()


def test_second_listener_with_its_own_master_cf_overrides(relayd_factory, sink):
    from tests.support.relayd_proc import free_port
    second = free_port()
    relayd = relayd_factory(master_cf=None)  # only to learn a free first port
    relayd.stop()
    master_cf = (f"127.0.0.1:{relayd.port} inet n - n - - smtpd\n"
                 f"127.0.0.1:{second} inet n - n - - smtpd\n"
                 f"  -o smtpd_recipient_limit=1\n"
                 f"  -o {{ smtpd_banner = second.example ESMTP submission }}\n")
    (relayd.directory / "master.cf").write_text(master_cf)
    relayd.start()
    first_out = dialogue(relayd.port, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\n"
                                      b"RCPT TO:<x@relay.example>\r\nRCPT TO:<y@relay.example>\r\nQUIT\r\n",
                         read_greeting=False)
    second_out = dialogue(second, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\n"
                                  b"RCPT TO:<x@relay.example>\r\nRCPT TO:<y@relay.example>\r\nQUIT\r\n",
                          read_greeting=False)
    assert first_out.startswith(b"220 relayd.test ESMTP relayd\r\n")
    assert second_out.startswith(b"220 second.example ESMTP submission\r\n")
    assert first_out.count(b"250 2.1.5 Ok") == 2
    assert second_out.count(b"250 2.1.5 Ok") == 1
    assert R.R452_TOO_MANY_RECIPIENTS.to_bytes() in second_out


def test_runs_without_a_config_directory_from_flags_alone(tmp_path, sink):
    """The bench harness's way: no main.cf, everything on the command line."""
    import sys
    import time
    from tests.support.relayd_proc import free_port
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "relayd", "--listen", f"127.0.0.1:{port}",
                             "--relayhost", f"127.0.0.1:{sink.port}", "--queue", str(tmp_path / "q"),
                             "-o", "myhostname=flags.test",
                             "-o", f"mail_owner={pwd.getpwuid(os.geteuid()).pw_name}",
                             "-o", "maillog_file=/dev/stderr"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                    client.sendmail("a@example.org", ["b@example.net"], b"Subject: flags\r\n\r\nx\r\n")
                break
            except OSError:
                time.sleep(0.1)
        (msg,) = sink.wait_for(1)
        assert b"by flags.test (relayd)" in msg.data
    finally:
        proc.terminate()
        proc.wait(15)

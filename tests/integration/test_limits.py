"""Limits on what a client controls, and SMTP smuggling, over real sockets."""
import re
import smtplib
import socket
import time

import pytest

from relayd.smtp import replies as R
from tests.integration.test_relay_path import dialogue, send

ENVELOPE = b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@relay.example>\r\nDATA\r\n"


def reply_lines(out: bytes) -> list[bytes]:
    return [line for line in out.split(b"\r\n") if line[3:4] == b" "]


def test_size_announced_too_big_is_refused_at_mail(relayd_factory, sink):
    relayd = relayd_factory("message_size_limit = 2000\n")
    out = dialogue(relayd.port, b"EHLO c\r\nMAIL FROM:<a@example.org> SIZE=3000\r\nQUIT\r\n")
    assert R.R552_MESSAGE_TOO_BIG.to_bytes() in out


def test_oversized_data_is_refused_and_nothing_kept(relayd_factory, sink):
    relayd = relayd_factory("message_size_limit = 2000\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        # No SIZE= announced (smtplib would send one): the limit is enforced in DATA.
        client.ehlo("c.example")
        client.mail("a@example.org")
        client.rcpt("b@relay.example")
        code, text = client.data(b"Subject: big\r\n\r\n" + b"x" * 3000)
        assert (code, text) == (552, b"5.3.4 Message size exceeds fixed limit")
        # The session goes on: the next message is accepted.
        client.sendmail("a@example.org", ["c@relay.example"], b"Subject: small\r\n\r\nok\r\n")
    (msg,) = sink.wait_for(1)
    assert msg.recipients == ["c@relay.example"]
    time.sleep(0.5)
    assert len(sink.messages) == 1


def test_recipient_limit(relayd_factory, sink):
    relayd = relayd_factory("smtpd_recipient_limit = 3\n")
    lines = b"EHLO c\r\nMAIL FROM:<a@example.org>\r\n" + b"".join(
        b"RCPT TO:<r%d@relay.example>\r\n" % i for i in range(4)) + b"QUIT\r\n"
    out = dialogue(relayd.port, lines)
    codes = [line[:3] for line in reply_lines(out)]
    assert codes[2:6] == [b"250", b"250", b"250", b"452"]
    assert R.R452_TOO_MANY_RECIPIENTS.to_bytes() in out


def test_overlong_command_line_is_refused_and_session_goes_on(relayd):
    out = dialogue(relayd.port, b"NOOP " + b"x" * 5000 + b"\r\nNOOP\r\nQUIT\r\n")
    lines = reply_lines(out)
    assert lines[0].startswith(b"500")
    assert lines[1:] == [R.R250_OK.to_bytes()[:-2], R.R221_BYE.to_bytes()[:-2]]


def test_hop_limit(relayd_factory, sink):
    relayd = relayd_factory("hopcount_limit = 5\n")
    looping = b"".join(b"Received: from hop%d\r\n" % i for i in range(5)) + b"Subject: loop\r\n\r\nx\r\n"
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(relayd, "a@example.org", ["b@relay.example"], looping)
    assert (err.value.smtp_code, err.value.smtp_error) == (554, b"5.4.0 Error: too many hops")
    refused = re.compile(r"relayd/smtpd\[\d+\]: [0-9A-F]+: reject: END-OF-MESSAGE from "
                         r"\S+\[127\.0\.0\.1\]: 554 5\.4\.0 Error: too many hops; "
                         r"from=<a@example\.org> proto=ESMTP helo=<[^>]+>$", re.M)
    deadline = time.monotonic() + 10
    while not refused.search(relayd.log()):
        assert time.monotonic() < deadline, relayd.log()
        time.sleep(0.05)
    fine = b"".join(b"Received: from hop%d\r\n" % i for i in range(4)) + b"Subject: ok\r\n\r\nx\r\n"
    send(relayd, "a@example.org", ["b@relay.example"], fine)
    (msg,) = sink.wait_for(1)
    assert b"Subject: ok" in msg.data


def test_idle_client_is_disconnected(relayd_factory):
    relayd = relayd_factory("smtpd_timeout = 2s\n")
    with socket.create_connection(("127.0.0.1", relayd.port), timeout=10) as s:
        assert s.recv(1024).startswith(b"220")
        started = time.monotonic()
        out = s.recv(1024)
        assert out.startswith(b"421 4.4.2 relayd.test Error: timeout exceeded")
        assert s.recv(1024) == b""
        assert time.monotonic() - started < 8
    relayd.wait_log("timeout after CONNECT from unknown[127.0.0.1]")


def test_timeout_and_lost_connection_name_where_the_session_was(relayd_factory, sink):
    """As smtpd.c: inside the content "after DATA (N bytes)" (N: octets received,
    unparsed ones included), after a message "after END-OF-MESSAGE", and a client
    that leaves right after its message without QUIT is not logged as lost."""
    relayd = relayd_factory("smtpd_timeout = 1s\n")
    message = b"Subject: t\r\n\r\nhello\r\n"          # 21 octets
    scripts = {
        "timeout in content": ENVELOPE + message + b"par",      # 3 octets not a line yet
        "lost in content": ENVELOPE + message,
        "timeout after message": ENVELOPE + message + b".\r\n",
        "gone after message": ENVELOPE + message + b".\r\n",
    }
    clients = {}
    for name, script in scripts.items():
        s = socket.create_connection(("127.0.0.1", relayd.port), timeout=10)
        s.sendall(script)
        clients[name] = s
    for name in ("timeout after message", "gone after message"):
        got = b""
        while b"250 2.0.0 Ok: queued" not in got:
            got += clients[name].recv(4096)
    for name in ("lost in content", "gone after message"):
        clients[name].close()
    deadline = time.monotonic() + 15
    while relayd.log().count("disconnect from unknown[127.0.0.1]") < 1 + 4:  # start()'s probe
        assert time.monotonic() < deadline, relayd.log()
        time.sleep(0.05)
    for s in clients.values():
        s.close()
    log = relayd.log()
    assert "timeout after DATA (24 bytes) from unknown[127.0.0.1]" in log
    assert "lost connection after DATA (21 bytes) from unknown[127.0.0.1]" in log
    assert "timeout after END-OF-MESSAGE from unknown[127.0.0.1]" in log
    assert log.count("lost connection after") == 1, log
    assert "after RCPT" not in log


def test_drip_feeding_client_is_disconnected(relayd_factory):
    relayd = relayd_factory("smtpd_timeout = 2s\n")
    with socket.create_connection(("127.0.0.1", relayd.port), timeout=10) as s:
        s.recv(1024)
        got = b""
        for byte in b"EHLO drip.example.but.a.very.long.name.indeed\r\n":
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.3)
            s.setblocking(False)
            try:
                got += s.recv(1024)
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
            if got:
                break
        assert got.startswith(b"421 4.4.2")


def test_hard_error_limit_disconnects(relayd_factory):
    relayd = relayd_factory("smtpd_hard_error_limit = 3\n")
    out = dialogue(relayd.port, b"FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n")
    lines = reply_lines(out)
    assert lines[:2] == [R.R500_UNRECOGNIZED.to_bytes()[:-2]] * 2
    assert lines[2] == R.R421_TOO_MANY_ERRORS.format("relayd.test").to_bytes()[:-2]
    assert len(lines) == 3  # NOOP never answered: the connection was closed


def test_many_idle_sessions_do_not_starve_a_new_client(relayd, sink):
    idle = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", relayd.port), timeout=10)
            idle.append(s)
        for s in idle:
            assert s.recv(1024).startswith(b"220")
        send(relayd, "a@example.org", ["b@relay.example"], b"Subject: busy\r\n\r\nx\r\n")
        (msg,) = sink.wait_for(1)
        assert b"Subject: busy" in msg.data
    finally:
        for s in idle:
            s.close()


def test_session_limit_refuses_with_421(relayd_factory):
    relayd = relayd_factory("smtpd_session_limit = 2\n")
    a = socket.create_connection(("127.0.0.1", relayd.port), timeout=10)
    b = socket.create_connection(("127.0.0.1", relayd.port), timeout=10)
    try:
        a.recv(1024), b.recv(1024)
        with socket.create_connection(("127.0.0.1", relayd.port), timeout=10) as c:
            assert c.recv(1024).startswith(b"421 4.7.0")
    finally:
        a.close(), b.close()


SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@relay.example>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nsmuggled\r\n")
FAKE_ENDS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r",
             b"\r\n.\r\r\n", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n"]


@pytest.mark.parametrize("mode", ["normalize", "reject", "no"])
def test_smtp_smuggling_never_reaches_the_smart_host(relayd_factory, sink, mode):
    relayd = relayd_factory(f"smtpd_forbid_bare_newline = {mode}\n")
    for i, fake_end in enumerate(FAKE_ENDS):
        payload = (ENVELOPE + b"Subject: outer %d\r\n\r\nouter body" % i + fake_end + SMUGGLED
                   + b"\r\n.\r\nQUIT\r\n")
        dialogue(relayd.port, payload)
    time.sleep(1.5)
    assert len(sink.messages) <= len(FAKE_ENDS)
    for msg in sink.messages:
        assert msg.sender == "a@example.org" and msg.recipients == ["b@relay.example"]
        raw = msg.raw
        assert raw.count(b"\n") == raw.count(b"\r\n"), raw
        assert raw.count(b"\r") == raw.count(b"\r\n"), raw
        assert b"\x00" not in raw
        lines = raw.split(b"\r\n")
        assert lines.index(b".") == len(lines) - 2, raw  # the only lone dot is the end


def test_soft_error_limit_slows_down_a_client_that_keeps_erring(relayd_factory):
    relayd = relayd_factory("smtpd_soft_error_limit = 2\nsmtpd_error_sleep_time = 1s\n"
                            "smtpd_hard_error_limit = 10\n")
    with socket.create_connection(("127.0.0.1", relayd.port), timeout=10) as s:
        s.recv(1024)
        delays = []
        for _ in range(3):
            started = time.monotonic()
            s.sendall(b"FOO\r\n")
            assert s.recv(1024).startswith(b"500 5.5.2")
            delays.append(time.monotonic() - started)
    # Below the soft limit errors are answered at once; from it on, after the sleep.
    assert delays[2] >= 0.9 and delays[2] - delays[0] >= 0.5


def test_connections_per_client_are_limited_outside_mynetworks(relayd_factory):
    relayd = relayd_factory("mynetworks = 192.0.2.0/24\nsmtpd_client_connection_count_limit = 2\n"
                            "relayd_worker_processes = 1\n")
    a = socket.create_connection(("127.0.0.1", relayd.port), timeout=10)
    b = socket.create_connection(("127.0.0.1", relayd.port), timeout=10)
    try:
        assert a.recv(1024).startswith(b"220") and b.recv(1024).startswith(b"220")
        with socket.create_connection(("127.0.0.1", relayd.port), timeout=10) as c:
            assert c.recv(1024) == b"421 4.7.0 relayd.test Error: too many connections from 127.0.0.1\r\n"
        relayd.wait_log("Connection concurrency limit exceeded: 3 from unknown[127.0.0.1]")
    finally:
        a.close(), b.close()


def test_mynetworks_clients_are_exempt_from_the_per_client_limit(relayd_factory):
    relayd = relayd_factory("smtpd_client_connection_count_limit = 1\n")
    a = socket.create_connection(("127.0.0.1", relayd.port), timeout=10)
    b = socket.create_connection(("127.0.0.1", relayd.port), timeout=10)
    try:
        assert a.recv(1024).startswith(b"220") and b.recv(1024).startswith(b"220")
    finally:
        a.close(), b.close()

"""Issue 7 (hardening) on the SMTP server side, over real sockets against a relayd process:
junk commands, client strings in logs and replies, and sessions that must end."""
import socket
import time

import pytest

from relayd.smtp import replies as R
from tests.integration.test_limits import reply_lines
from tests.integration.test_relay_path import dialogue

JUNK_LIMITS = ("smtpd_junk_command_limit = 3\nsmtpd_hard_error_limit = 3\n"
               "smtpd_soft_error_limit = 10\n")


def test_junk_commands_past_the_limit_count_as_errors(relayd_factory):
    relayd = relayd_factory(JUNK_LIMITS)
    out = dialogue(relayd.port, b"EHLO c.example\r\n" + b"NOOP\r\nRSET\r\nVRFY postmaster\r\n" * 4)
    lines = reply_lines(out)
    # Postfix: "if (junk_cmds++ > limit) error_count++": the 5th junk command is the
    # first error (EHLO is one too), the 7th reaches smtpd_hard_error_limit = 3.
    assert [line[:3] for line in lines] == [b"250", b"250", b"250", b"252", b"250", b"250",
                                            b"421"]
    assert lines[-1] + b"\r\n" == R.R421_TOO_MANY_ERRORS.format("relayd.test").to_bytes()
    relayd.wait_log("too many errors after VRFY from unknown[127.0.0.1]")


def test_a_delivered_message_resets_the_junk_count(relayd_factory, sink):
    relayd = relayd_factory(JUNK_LIMITS)
    message = (b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@relay.example>\r\nDATA\r\n"
               b"Subject: x\r\n\r\nx\r\n.\r\n")
    out = dialogue(relayd.port, b"HELO c.example\r\n" + b"NOOP\r\n" * 5 + message
                   + b"NOOP\r\n" * 5 + b"QUIT\r\n")
    codes = [line[:3] for line in reply_lines(out)]
    assert codes == [b"250"] * 6 + [b"250", b"250", b"354", b"250"] + [b"250"] * 5 + [b"221"]
    sink.wait_for(1)


# --- item 5: a session ends at most smtpd_timeout after its last progress ------------
# One worker and one session slot: while a stuck session holds the slot, a new
# client hears "421 too many connections"; once relayd has closed the stuck
# session's socket, the new client gets its 220.
TIMEOUT_CF = ("smtpd_timeout = 1s\nsmtpd_session_limit = 1\nrelayd_worker_processes = 1\n"
              "smtpd_junk_command_limit = 100000\n")  # the timeout must hold on its own


def _slot_freed(relayd, bound=20.0):
    """Poll (bounded) until a new client gets its 220; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        with socket.create_connection(("127.0.0.1", relayd.port), timeout=10) as c:
            greeting = c.recv(1024)
            if greeting.startswith(b"220"):
                c.sendall(b"QUIT\r\n")
                return time.monotonic() - started
            assert greeting.startswith(b"421 4.7.0"), greeting
        time.sleep(0.2)
    raise AssertionError(f"the stuck session still holds its slot after {bound}s:\n{relayd.log()}")


def _stuck_client(relayd, rcvbuf=4096):
    """A client with a small receive buffer, so that the server's replies fill
    its send buffer quickly once the client stops reading."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    # A small MSS keeps relayd's autotuned send buffer small, as on a real network
    # (over loopback it grows to megabytes, and small writes always find room).
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    s.connect(("127.0.0.1", relayd.port))
    return s


def _pipeline(s, data, bound=10.0):
    """Send ``data`` as far as the peer takes it within ``bound`` seconds."""
    s.settimeout(bound)
    try:
        s.sendall(data)
    except OSError:
        pass


EHLOS = b"EHLO x\r\n" * 60000  # ~5.7 MB of replies: more than any loopback send buffer


def _never_reads(s, relayd):
    relayd.wait_log("timeout after EHLO from unknown[127.0.0.1]", timeout=20)


def _reads_one_byte_at_a_time(s, relayd):
    s.settimeout(10)
    started = time.monotonic()
    while "timeout after EHLO" not in relayd.log():  # a drip of reading is no progress
        assert s.recv(1), "closed before the timeout was logged"
        assert time.monotonic() - started < 20, relayd.log()
        time.sleep(0.2)


def _half_closes(s, relayd):
    s.shutdown(socket.SHUT_WR)  # relayd sees the end of input with replies still owed


@pytest.mark.parametrize("client", [_never_reads, _reads_one_byte_at_a_time, _half_closes],
                         ids=lambda f: f.__name__.strip("_"))
def test_client_that_pipelines_and_stops_reading_is_disconnected(relayd_factory, client):
    relayd = relayd_factory(TIMEOUT_CF)
    s = _stuck_client(relayd)
    try:
        _pipeline(s, EHLOS)
        client(s, relayd)
        _slot_freed(relayd)
        relayd.wait_log("disconnect from unknown[127.0.0.1] ehlo=")
    finally:
        s.close()


@pytest.mark.parametrize("prefix", [b"", b"EHLO c\r\nMAIL FROM:<a@example.org>\r\n"
                                        b"RCPT TO:<b@relay.example>\r\nDATA\r\n"],
                         ids=["command", "data"])
def test_client_that_sends_one_byte_at_a_time_is_disconnected(relayd_factory, prefix):
    relayd = relayd_factory(TIMEOUT_CF)
    with socket.create_connection(("127.0.0.1", relayd.port), timeout=10) as s:
        s.sendall(prefix)
        started = time.monotonic()
        # Bytes keep coming, twice a second, but never a whole line: no progress.
        while "timeout after" not in relayd.log():
            try:
                s.sendall(b"x")
            except OSError:
                break
            assert time.monotonic() - started < 20, relayd.log()
            time.sleep(0.5)
        _slot_freed(relayd)


@pytest.mark.parametrize("extra_cf, last_line", [
    ("smtpd_soft_error_limit = 1\nsmtpd_error_sleep_time = 30s\n", b"FOO\r\n"),
    ("", b"GET / HTTP/1.0\r\n"),
], ids=["error-sleep", "protocol-error"])
def test_last_words_never_wait_for_a_client_that_does_not_read(relayd_factory, extra_cf,
                                                               last_line):
    # Replies owed to a pipelined group are still unwritten when the session ends:
    # during an error sleep (smtpd_error_sleep_time) the deadline passes; after a
    # non-SMTP command the session ends with 221. The last words (owed replies and
    # the 421 or 221) must not wait for a client that does not read.
    relayd = relayd_factory(TIMEOUT_CF + extra_cf)
    s = _stuck_client(relayd)
    try:
        _pipeline(s, b"HELP\r\n" * 10000 + last_line)
        _slot_freed(relayd)
        assert "Traceback" not in relayd.log()
    finally:
        s.close()


# --- items 8 and 10b: client strings reach logs and headers printable ----------------
def test_client_strings_reach_the_log_and_the_received_header_printable(relayd_factory, sink):
    relayd = relayd_factory("mynetworks = 192.0.2.0/24\n")  # so that a relay attempt is logged
    helo = "\x1b[2J\x1b]0;pwned\x07evil<x>\u2028Subject: injected".encode()
    out = dialogue(relayd.port, b"EHLO " + helo + b"\r\n"
                   b"MAIL FROM:<a@example.org>\r\nRCPT TO:<x@elsewhere.example>\r\n"
                   b"RCPT TO:<b@relay.example>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nQUIT\r\n")
    assert [line[:3] for line in reply_lines(out)][-4:] == [b"250", b"354", b"250", b"221"]
    # Postfix's helo_cmd: printable(), then " <>()\\\";@" neutered, all as "?".
    log = relayd.wait_log("helo=<?[2J?]0?pwned?evil?x??Subject:?injected>")
    assert not any(ch in log for ch in "\x1b\x07\u2028")
    (msg,) = sink.wait_for(1)
    received = msg.data.split(b"\r\n\r\n")[0].decode("utf-8")
    assert not any(ch in received for ch in "\x1b\x07\u2028")
    assert "\nSubject: injected" not in received


def test_content_past_the_size_limit_is_progress_too(relayd_factory):
    # Past message_size_limit the content is discarded while relayd reads on to the
    # final dot; a client that keeps sending whole lines must get its 552, not a
    # timeout. (Only whole lines count: see the drip tests above.)
    relayd = relayd_factory("smtpd_timeout = 1s\nmessage_size_limit = 1000\n")
    with socket.create_connection(("127.0.0.1", relayd.port), timeout=10) as s:
        s.recv(1024)
        s.sendall(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@relay.example>\r\nDATA\r\n")
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # well past smtpd_timeout
            s.sendall(b"x" * 78 + b"\r\n")
            time.sleep(0.05)
        s.sendall(b".\r\nQUIT\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert R.R552_MESSAGE_TOO_BIG.to_bytes() in out, out
    assert b"421" not in out

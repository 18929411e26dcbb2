"""relayd under systemd's protocols, over real sockets.

sd_notify: the test listens on an AF_UNIX datagram socket (a path, and an
abstract address) named by NOTIFY_SOCKET, as systemd does, and reads READY,
RELOADING, STATUS, STOPPING and WATCHDOG from a real relayd. Socket
activation: systemd's own systemd-socket-activate binds the listening
sockets and execs relayd with LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES.
"""
import os
import shutil
import signal
import smtplib
import socket
import tempfile
import time
import uuid

import pytest

from relayd.master import take_sockets
from tests.integration.test_daemon import banner, wait_until, workers_of
from tests.support.relayd_proc import RelaydProcess, free_port


class NotifySocket:
    """What systemd's notify socket receives: one list of lines per datagram."""

    def __init__(self, address: str):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.received: list[tuple[float, list[str]]] = []

    def poll(self) -> None:
        try:
            while True:
                data = self.sock.recv(4096)
                self.received.append((time.monotonic(), data.decode().split("\n")))
        except (socket.timeout, BlockingIOError):
            pass

    def wait_for(self, line: str, after: int = 0, timeout: float = 20.0) -> list[str]:
        """The first datagram (from index ``after`` on) holding ``line``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            for _, lines in self.received[after:]:
                if line in lines:
                    return lines
        raise AssertionError(f"{line!r} never notified; got {self.received}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_path():
    directory = tempfile.mkdtemp(prefix="relayd-notify-")  # short: sun_path is 108 bytes
    yield os.path.join(directory, "notify")
    shutil.rmtree(directory)


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_ready_reloading_status_stopping(tmp_path, sink, notify_path, kind):
    address = notify_path if kind == "path" else f"@relayd-test-{uuid.uuid4().hex}"
    notify = NotifySocket(address)
    relayd = RelaydProcess(tmp_path / "relayd", sink.port, "relayd_worker_processes = 2\n")
    try:
        relayd.start(env={"NOTIFY_SOCKET": address})
        ready = notify.wait_for("READY=1")
        assert "STATUS=2 workers, 0 sessions, 0 messages queued" in ready
        mark = len(notify.received)
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        relayd.proc.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", after=mark)
        (usec,) = [int(x.split("=")[1]) for x in reloading if x.startswith("MONOTONIC_USEC=")]
        assert usec >= before   # CLOCK_MONOTONIC, as Type=notify-reload checks
        index = next(i for i, (_, lines) in enumerate(notify.received) if "RELOADING=1" in lines)
        notify.wait_for("READY=1", after=index + 1)   # both workers replaced
        mark = len(notify.received)
        relayd.proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", after=mark)
        assert relayd.proc.wait(30) == 0
    finally:
        relayd.stop()
        notify.close()


def test_status_reports_the_queue_size(tmp_path, notify_path):
    notify = NotifySocket(notify_path)
    relayd = RelaydProcess(tmp_path / "relayd", free_port(), "relayd_worker_processes = 1\n")
    try:
        relayd.start(env={"NOTIFY_SOCKET": notify_path})
        notify.wait_for("READY=1")
        with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:  # next hop down
            smtp.sendmail("a@example.org", ["b@relay.example"], b"Subject: q\r\n\r\nx\r\n")
        notify.wait_for("STATUS=1 workers, 0 sessions, 1 messages queued")
    finally:
        relayd.stop()
        notify.close()


def test_watchdog_pings_only_while_every_worker_loop_runs(tmp_path, sink, notify_path):
    notify = NotifySocket(notify_path)
    relayd = RelaydProcess(tmp_path / "relayd", sink.port, "relayd_worker_processes = 2\n")
    try:
        relayd.start(env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "1000000"})
        notify.wait_for("WATCHDOG=1")
        worker = min(workers_of(relayd.proc.pid))
        os.kill(worker, signal.SIGSTOP)   # its event loop no longer runs
        try:
            def silent_for(seconds):
                notify.poll()
                pings = [t for t, lines in notify.received if "WATCHDOG=1" in lines]
                return time.monotonic() - pings[-1] >= seconds
            wait_until(lambda: silent_for(3.0), timeout=20, what="the pings to stop")
        finally:
            os.kill(worker, signal.SIGCONT)
        mark = len(notify.received)
        notify.wait_for("WATCHDOG=1", after=mark)   # healthy again: pings resume
    finally:
        relayd.stop()
        notify.close()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate not installed")
def test_socket_activation_matches_passed_sockets_to_services_by_address(tmp_path, sink):
    smtp_port, submission_port = free_port(), free_port()
    master_cf = (f"127.0.0.1:{smtp_port} inet n - n - - smtpd\n"
                 f"127.0.0.1:{submission_port} inet n - n - - smtpd\n"
                 f"  -o smtpd_banner=ESMTP_submission\n")
    relayd = RelaydProcess(tmp_path / "relayd", sink.port, "relayd_worker_processes = 2\n",
                           master_cf=master_cf)
    relayd.port = smtp_port
    launcher = ("systemd-socket-activate", "-l", f"127.0.0.1:{submission_port}",
                "-l", f"127.0.0.1:{smtp_port}", "--fdname=submission:smtp",
                *[f"-E{name}={os.environ[name]}" for name in ("PATH", "PYTHONPATH")
                  if name in os.environ])
    try:
        relayd.start(launcher=launcher)
        # relayd execs in systemd-socket-activate's place and serves the passed sockets:
        # had it bound the ports itself, the bind would have failed (in use).
        assert "ESMTP_submission" in banner(submission_port)
        assert "ESMTP_submission" not in banner(smtp_port)
        with smtplib.SMTP("127.0.0.1", submission_port, timeout=10) as smtp:
            smtp.sendmail("a@example.org", ["b@relay.example"], b"Subject: a\r\n\r\nx\r\n")
        sink.wait_for(1)
        assert "cannot start" not in relayd.log()
    finally:
        relayd.stop()


def test_a_passed_wildcard_socket_serves_the_services_on_its_port():
    """take_sockets, sans-I/O: systemd's ListenStream=25 is [::]:25 (or 0.0.0.0:25);
    master.cf's "smtp inet" with inet_interfaces = all wants 0.0.0.0:25 and [::]:25."""
    wildcard, submission = object(), object()
    sockets = take_sockets([("0.0.0.0", 25), ("::", 25), ("192.0.2.1", 587)],
                           {("::", 25): wildcard, ("192.0.2.1", 587): submission})
    assert sockets == {("::", 25): wildcard, ("192.0.2.1", 587): submission}

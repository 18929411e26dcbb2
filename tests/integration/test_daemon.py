"""The master supervising its workers, through a real relayd process.

A worker killed with SIGKILL mid-load is restarted on its own queue and
everything it acknowledged is delivered; a worker that cannot start is
throttled; SIGHUP reloads without dropping a session and refuses a bad
configuration; SIGTERM drains; relayd status / reload / stop.
"""
import os
import signal
import smtplib
import socket
import time

import pytest

from tests.integration.test_crash_loop import Load
from tests.support.relayd_proc import RelaydProcess, free_port, live_children
from tests.support.sink import Sink


def workers_of(master_pid: int) -> set[int]:
    """The live worker processes of the master ``master_pid`` (not its local delivery process)."""
    return {pid for pid in live_children(master_pid) if process_name(pid) != "relayd/local"}


def process_name(pid: int) -> str:
    """/proc/PID/comm ("" when the process is gone)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def wait_until(condition, timeout: float = 15.0, what: str = "condition", relayd=None):
    """Poll ``condition`` until true (its value) or ``timeout``: AssertionError
    naming ``what``, with the end of ``relayd``'s log when given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}"
                         + (f"; the log ends:\n{relayd.log()[-3000:]}" if relayd else ""))


def banner(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        text = s.recv(512).decode()
        s.sendall(b"QUIT\r\n")
        return text


def test_killed_worker_is_restarted_and_its_acknowledged_mail_delivered(tmp_path):
    sink_port = free_port()   # the next hop is down: acknowledged mail waits in the queues
    relayd = RelaydProcess(tmp_path / "relayd", sink_port, "relayd_worker_processes = 2\n").start()
    try:
        workers = wait_until(lambda: len(workers_of(relayd.proc.pid)) == 2 and
                             workers_of(relayd.proc.pid), what="two workers")
        load = Load(relayd.port, senders=4)
        load.start()
        wait_until(lambda: load.count() >= 40, what="40 messages acknowledged")
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        relayd.wait_log(f"warning: process relayd/worker pid {victim} killed by signal 9")
        wait_until(lambda: len(workers_of(relayd.proc.pid) - workers) == 1, timeout=30,
                   what="a new worker in the killed one's place", relayd=relayd)
        before = load.count()
        wait_until(lambda: load.count() >= before + 40, what="load going on after the restart")
        acknowledged = load.finish()
        sink = Sink(port=sink_port).start()   # the next hop comes back
        try:
            wait_until(lambda: acknowledged <= {m.recipients[0].split("@")[0]
                                                for m in list(sink.messages)},
                       timeout=60, what="every acknowledged message at the sink")
        finally:
            sink.stop()
        assert "bad command startup" not in relayd.log()
    finally:
        relayd.stop()


def test_a_worker_that_cannot_start_says_why_and_is_throttled_not_spun(tmp_path, sink):
    relayd = RelaydProcess(tmp_path / "relayd", sink.port, "relayd_worker_processes = 2\n")
    relayd.spool.mkdir(parents=True)
    (relayd.spool / "worker-1").write_text("not a directory\n")  # worker 1's queue cannot open
    relayd.start()
    try:
        # The master logs this after reaping the worker: the worker's own lines are in by now
        # (flushed before it exits: the batching handler would otherwise lose them).
        log = relayd.wait_log("warning: relayd/worker: bad command startup -- throttling")
        failed = [line for line in log.splitlines() if "error: worker 1 failed" in line]
        assert failed, log
        assert f"{relayd.spool}/worker-1" in log.split(failed[0], 1)[1], log
        # Throttled for service_throttle_time (60s): no second attempt comes soon,
        # and worker 0 serves meanwhile.
        with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
            smtp.sendmail("a@example.org", ["b@relay.example"], b"Subject: t\r\n\r\nx\r\n")
        sink.wait_for(1)
        time.sleep(2)  # a spinning master would have tried dozens of times by now
        assert relayd.log().count("bad command startup") == 1
    finally:
        relayd.stop()


def _write_main_cf(relayd: RelaydProcess, extra: str) -> None:
    text = (relayd.directory / "main.cf").read_text()
    (relayd.directory / "main.cf").write_text(text + extra)


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_without_dropping_a_session(relayd_factory, sink, workers):
    relayd = relayd_factory(f"relayd_worker_processes = {workers}\n")
    session = smtplib.SMTP("127.0.0.1", relayd.port, timeout=30)
    session.ehlo("old.example")
    session.mail("a@example.org")
    _write_main_cf(relayd, "smtpd_banner = $myhostname ESMTP reloaded\n")
    relayd.proc.send_signal(signal.SIGHUP)
    relayd.wait_log("reload -- version")
    session.rcpt("in-flight@relay.example")
    code, _ = session.data(b"Subject: in flight\r\n\r\nstarted before the reload\r\n")
    assert code == 250
    session.quit()
    wait_until(lambda: "reloaded" in banner(relayd.port), what="new sessions on the new config")
    (msg,) = sink.wait_for(1)
    assert msg.recipients == ["in-flight@relay.example"]
    assert relayd.proc.poll() is None


def test_sighup_refuses_a_bad_configuration_and_keeps_the_old_one(relayd_factory):
    relayd = relayd_factory("smtpd_banner = $myhostname ESMTP first\n")
    _write_main_cf(relayd, "message_size_limit = lots\nsmtpd_banner = $myhostname ESMTP second\n")
    relayd.proc.send_signal(signal.SIGHUP)
    log = relayd.wait_log("reload refused")
    assert "message_size_limit" in log and "keeping the running configuration" in log
    assert "ESMTP first" in banner(relayd.port)
    assert relayd.proc.poll() is None


def test_sigterm_drains_the_session_in_progress(relayd_factory, sink):
    relayd = relayd_factory("relayd_worker_processes = 1\n")
    session = smtplib.SMTP("127.0.0.1", relayd.port, timeout=30)
    session.ehlo("drain.example")
    session.mail("a@example.org")
    session.rcpt("draining@relay.example")
    relayd.proc.send_signal(signal.SIGTERM)

    def refused():
        try:
            socket.create_connection(("127.0.0.1", relayd.port), timeout=1).close()
        except OSError:
            return True
        return False
    wait_until(refused, what="the port to stop accepting")
    code, _ = session.data(b"Subject: drained\r\n\r\nfinished after SIGTERM\r\n")
    assert code == 250
    session.quit()
    assert relayd.proc.wait(30) == 0
    relayd.start()   # whatever was not delivered before the exit is in the queue
    (msg,) = sink.wait_for(1)
    assert msg.recipients == ["draining@relay.example"]


def test_status_reload_and_stop_commands(relayd_factory):
    relayd = relayd_factory("relayd_worker_processes = 2\n")
    wait_until(lambda: relayd.command("status").stdout.count("worker pid") == 2,
               what="both workers in relayd status")
    status = relayd.command("status").stdout
    assert f"master pid {relayd.proc.pid}" in status
    assert "0 sessions" in status and "messages queued" in status
    _write_main_cf(relayd, "smtpd_banner = $myhostname ESMTP by command\n")
    assert relayd.command("reload").returncode == 0
    wait_until(lambda: "by command" in banner(relayd.port), what="the reloaded banner")
    done = relayd.command("stop")
    assert done.returncode == 0, done.stderr
    assert relayd.proc.wait(10) == 0
    gone = relayd.command("status")
    assert gone.returncode == 1 and "not running" in gone.stderr


def test_sighup_rereads_master_cf_binding_a_new_service_and_refusing_a_bad_one(relayd_factory):
    relayd = relayd_factory("relayd_worker_processes = 2\n")
    master_cf = relayd.directory / "master.cf"
    extra = free_port()
    master_cf.write_text(master_cf.read_text() + f"127.0.0.1:{extra} inet n - n - - smtpd\n"
                         "  -o smtpd_banner=second_service\n")
    relayd.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: _answers(extra), what="the new service's port", relayd=relayd)
    assert "second_service" in banner(extra)
    assert "second_service" not in banner(relayd.port)
    master_cf.write_text(master_cf.read_text() + "broken inet n\n")
    relayd.proc.send_signal(signal.SIGHUP)
    log = relayd.wait_log("reload refused")
    assert "master.cf" in log.split("reload refused", 1)[1].splitlines()[0]
    assert "second_service" in banner(extra)   # the running configuration stays


def _answers(port: int) -> bool:
    try:
        return banner(port).startswith("220")
    except OSError:
        return False

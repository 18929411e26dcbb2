"""Run relayd as a real process, configured by files, as an admin would.

Integration tests talk to it over real sockets on 127.0.0.1 and read its
mail log; :meth:`RelaydProcess.kill9` produces a real crash.
"""
from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_MAIN_CF = """\
myhostname = relayd.test
mydomain = test
mydestination = $myhostname, localhost
queue_directory = {spool}
relayhost = [127.0.0.1]:{sink_port}
mynetworks = 127.0.0.0/8
relay_domains = relay.example
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
smtpd_error_sleep_time = 0
# No client name lookup unless a test asks for one with its own hosts file and
# DNS server (tests/integration/test_client_names.py): no test asks the host's resolver.
smtpd_peername_lookup = no
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RelaydProcess:
    """A relayd started with ``python -m relayd -c DIR``."""

    def __init__(self, directory: Path, sink_port: int, extra_main_cf: str = "",
                 master_cf: str | None = None, mail_owner: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.spool = self.directory / "spool"
        self.log_path = self.directory / "maillog"
        main_cf = BASE_MAIN_CF.format(spool=self.spool, sink_port=sink_port) + extra_main_cf
        (self.directory / "main.cf").write_text(main_cf)
        if master_cf is None:
            master_cf = f"127.0.0.1:{self.port} inet n - n - - smtpd\n"
        (self.directory / "master.cf").write_text(master_cf)
        self.proc: subprocess.Popen | None = None
        # By default the workers run as the user running the tests (no privilege step,
        # even as root: the test directories are private to that user). Given with -o,
        # as maillog_file, so that main.cf stays one Postfix's own tools accept (they
        # refuse a root mail_owner and a maillog_file outside maillog_file_prefixes).
        self.mail_owner = mail_owner or pwd.getpwuid(os.geteuid()).pw_name

    def start(self, timeout: float = 20.0, *, env: dict | None = None,
              launcher: tuple[str, ...] = ()) -> "RelaydProcess":
        """Start relayd (through ``launcher``, e.g. systemd-socket-activate, with
        ``env`` added to the environment) and wait for its greeting."""
        log = open(self.log_path, "ab")
        # A session of its own, so kill9() can kill the master and its workers at once.
        self.proc = subprocess.Popen([*launcher, sys.executable, "-m", "relayd",
                                      "-c", str(self.directory),
                                      "-o", f"mail_owner={self.mail_owner}",
                                      "-o", f"maillog_file={self.log_path}"],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **(env or {})})
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relayd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"relayd did not answer on port {self.port}:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill9(self) -> None:
        """Crash: SIGKILL to every relayd process (master and workers) at once;
        returns when none of them runs any more."""
        pgid = self.proc.pid
        os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        # Orphaned workers stay zombies until init reaps them; a zombie holds no
        # lock, socket or file, so it counts as gone.
        deadline = time.monotonic() + 10
        while live_members(pgid):
            assert time.monotonic() < deadline, f"relayd processes {live_members(pgid)} survive"
            time.sleep(0.02)

    def command(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "relayd", "-c", str(self.directory), *args],
                              capture_output=True, text=True, timeout=30)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the log:\n{self.log()}")


def live_members(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` that still run (zombies excluded)."""
    return _live_processes(2, pgid)


def live_children(pid: int) -> set[int]:
    """The child processes of ``pid`` that still run (zombies excluded)."""
    return set(_live_processes(1, pid))


def _live_processes(field: int, value: int) -> list[int]:
    # /proc/PID/stat after the command's ")": state, ppid (1), pgrp (2), ...
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value and fields[0] != "Z":
            pids.append(int(entry))
    return pids

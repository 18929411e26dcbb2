"""The TLS benchmark tools (tools/bench/tls_source.py, tls_sink.py,
tls_handshakes.py) on a few dozen messages, so that they do not rot: tls_source
-> relayd -> tls_sink with STARTTLS on both sides delivers every message, counted
at the sink as received over TLS, and tls_handshakes reports a positive rate
against relayd."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.relayd_proc import RelaydProcess, free_port

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench"
MESSAGES = 30


def tool(name, *args):
    return [sys.executable, str(BENCH / name), *args]


class TlsSink:
    """tools/bench/tls_sink.py as a process; its counter lines read as they come."""

    def __init__(self, certs):
        self.port = free_port()
        self.proc = subprocess.Popen(
            tool("tls_sink.py", "--cert", certs.chain("server"), "-w", "1",
                 f"127.0.0.1:{self.port}"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.counters = {}

    def wait_for(self, messages, timeout=10.0):
        """The counters once mesg= reached *messages* (the sink prints each change)."""
        deadline = time.monotonic() + timeout
        while self.counters.get("mesg", 0) < messages:
            assert time.monotonic() < deadline, f"sink counters: {self.counters}"
            line = self.proc.stdout.readline()
            assert line, f"the sink stopped: {self.counters}"
            if line.startswith("sess="):
                self.counters = {k: int(v) for k, v in (f.split("=") for f in line.split())}
        return self.counters

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def tls_sink(tls_certs):
    sink = TlsSink(tls_certs)
    yield sink
    sink.stop()


@pytest.fixture
def tls_relayd(tmp_path, tls_certs, tls_sink):
    """relayd with STARTTLS offered (may) and required towards tls_sink (encrypt)."""
    proc = RelaydProcess(tmp_path / "relayd", tls_sink.port,
                         f"smtpd_tls_security_level = may\n"
                         f"smtpd_tls_chain_files = {tls_certs.chain('server')}\n"
                         f"smtp_tls_security_level = encrypt\n"
                         f"relayd_worker_processes = 1\n")
    yield proc.start()
    proc.stop()


@pytest.mark.parametrize("persistent", [False, True], ids=["one-per-session", "persistent"])
def test_every_message_crosses_relayd_over_tls_both_ways(tls_relayd, tls_sink, persistent):
    source = subprocess.run(
        tool("tls_source.py", "-m", str(MESSAGES), "-l", "4096", "-s", "5", "-P", "1", "-N",
             "--timeout", "10", "--json", *(["-d"] if persistent else []),
             f"127.0.0.1:{tls_relayd.port}"),
        capture_output=True, text=True, timeout=30)
    assert source.returncode == 0, source.stdout + source.stderr
    report = json.loads(source.stdout)
    assert report["messages"] == MESSAGES and report["rate"] > 0
    assert report["sessions"] == (5 if persistent else MESSAGES)
    counters = tls_sink.wait_for(MESSAGES)
    assert counters["mesg"] == counters["tls"] == MESSAGES  # relayd -> sink: all over TLS
    assert "TLS is required" not in tls_relayd.log()


def test_source_fails_when_the_server_offers_no_starttls(tls_sink, tmp_path):
    # relayd without a certificate does not offer STARTTLS: the source must say so.
    proc = RelaydProcess(tmp_path / "plain", tls_sink.port, "relayd_worker_processes = 1\n").start()
    try:
        source = subprocess.run(tool("tls_source.py", "-m", "3", "-s", "1", "-P", "1",
                                     "--timeout", "10", f"127.0.0.1:{proc.port}"),
                                capture_output=True, text=True, timeout=30)
    finally:
        proc.stop()
    assert source.returncode == 1
    assert "0/3 messages" in source.stdout and "STARTTLS" in source.stdout


def test_handshakes_against_relayd(tls_relayd):
    run = subprocess.run(tool("tls_handshakes.py", "--count", "20", "-c", "4", "-P", "1",
                              "--json", f"127.0.0.1:{tls_relayd.port}"),
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["handshakes"] == 20 and report["failed"] == 0 and report["rate"] > 0

"""The test support's process handling: a crash leaves no process behind, and
zombies (dead, waiting for their parent to reap them) count as gone."""
import ctypes
import os
import subprocess
import sys
import threading
import time

from tests.support.relayd_proc import RelaydProcess, live_members

_PR_SET_CHILD_SUBREAPER = 36
_MASTER = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _subreaper(on: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0, os.strerror(ctypes.get_errno())


def test_kill9_does_not_wait_for_zombie_workers_to_be_reaped(tmp_path):
    relayd = RelaydProcess(tmp_path, sink_port=1)
    # This test adopts the orphaned "worker" (as init does) and reaps it only at
    # the end: until then it is a zombie, as orphaned workers are until init
    # gets round to them.
    _subreaper(True)
    try:
        relayd.proc = subprocess.Popen([sys.executable, "-c", _MASTER], start_new_session=True)
        deadline = time.monotonic() + 10
        while len(live_members(relayd.proc.pid)) < 2:
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.01)
        (worker,) = set(live_members(relayd.proc.pid)) - {relayd.proc.pid}
        done = threading.Event()
        thread = threading.Thread(target=lambda: (relayd.kill9(), done.set()))
        thread.start()
        try:
            assert done.wait(5), "kill9 still waits for a zombie to be reaped"
            assert _state(worker) == "Z"
            assert live_members(relayd.proc.pid) == []
        finally:
            os.waitpid(worker, 0)
            thread.join()
    finally:
        _subreaper(False)

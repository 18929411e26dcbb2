"""relayd without root: workers as mail_owner, or no privilege step at all.

Started as root with ``mail_owner = nobody``, the master stays root (it
binds) and every worker runs as nobody, read from /proc/PID/status; the
queue belongs to nobody, mode 0700. Started as nobody (through setpriv, on a
high port), relayd makes no privilege step. Both relay mail to the sink.
"""
import os
import pwd
import shutil
import smtplib
import stat
import tempfile
from pathlib import Path

import pytest

from tests.integration.test_daemon import wait_until, workers_of
from tests.support.relayd_proc import RelaydProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change users")
NOBODY = pwd.getpwnam("nobody")


def uids(pid: int) -> list[int]:
    """Real, effective, saved and filesystem uid of ``pid``."""
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("Uid:"))
    return [int(x) for x in line.split()[1:]]


@pytest.fixture
def open_directory():
    """A directory every user may traverse (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="relayd-priv-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def send(port: int, rcpt: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("a@example.org", [rcpt], b"Subject: p\r\n\r\nx\r\n")


def test_started_as_root_workers_run_as_mail_owner(open_directory, sink):
    relayd = RelaydProcess(open_directory / "relayd", sink.port,
                           "relayd_worker_processes = 2\n", mail_owner="nobody").start()
    try:
        workers = wait_until(lambda: len(workers_of(relayd.proc.pid)) == 2
                             and workers_of(relayd.proc.pid), what="two workers")
        assert uids(relayd.proc.pid)[1] == 0          # the master keeps root (reload binds)
        # Each worker drops before it opens its queue (a just-forked one may not have yet).
        wait_until(lambda: all(uids(pid) == [NOBODY.pw_uid] * 4 for pid in workers),
                   what="every worker as nobody, with no way back to root")
        send(relayd.port, "priv@relay.example")
        (msg,) = sink.wait_for(1)
        assert msg.recipients == ["priv@relay.example"]
        st = relayd.spool.stat()
        # Traversable (sendmail's users reach maildrop/ and public/), never listable.
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY.pw_uid, 0o711)
        assert stat.S_IMODE((relayd.spool / "worker-1").stat().st_mode) == 0o700
        assert (relayd.spool / "worker-1").stat().st_uid == NOBODY.pw_uid
        assert (relayd.spool / "master.lock").stat().st_uid == 0
    finally:
        relayd.stop()


def test_an_unknown_mail_owner_stops_a_root_start(open_directory, sink):
    relayd = RelaydProcess(open_directory / "relayd", sink.port,
                           mail_owner="no-such-relayd-user")
    with pytest.raises(RuntimeError, match="exited with 78"):
        relayd.start()
    assert "mail_owner: unknown user name value: no-such-relayd-user" in relayd.log()


def test_started_unprivileged_there_is_no_privilege_step(open_directory, sink):
    directory = open_directory / "relayd"
    relayd = RelaydProcess(directory, sink.port, "relayd_worker_processes = 2\n",
                           mail_owner="relayd-user-that-is-never-looked-up")
    os.chown(directory, NOBODY.pw_uid, NOBODY.pw_gid)   # nobody creates its queue here
    relayd.log_path.touch()
    os.chown(relayd.log_path, NOBODY.pw_uid, NOBODY.pw_gid)   # and writes its maillog_file
    relayd.start(launcher=("setpriv", f"--reuid={NOBODY.pw_uid}",
                           f"--regid={NOBODY.pw_gid}", "--clear-groups"))
    try:
        workers = wait_until(lambda: len(workers_of(relayd.proc.pid)) == 2
                             and workers_of(relayd.proc.pid), what="two workers")
        for pid in workers | {relayd.proc.pid}:
            assert uids(pid) == [NOBODY.pw_uid] * 4
        send(relayd.port, "unpriv@relay.example")
        (msg,) = sink.wait_for(1)
        assert msg.recipients == ["unpriv@relay.example"]
    finally:
        relayd.stop()

"""Local (Maildir) delivery as the recipient, through the privileged local process.

A real relayd started as root with mail_owner = relaydtowner: its workers
run as that user, and each mailbox is written by a child of the relayd/local
process as the recipient (root's mail as default_privs, nobody). A symlink a
recipient put in their own Maildir path is never followed: the delivery is
deferred and the log says why. The local process's socket refuses any peer
but mail_owner, and a killed local process is restarted without ending any
SMTP session.
"""
import os
import pwd
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_daemon import process_name, wait_until, workers_of
from tests.integration.test_privileges import open_directory, uids  # noqa: F401 (fixture)
from tests.support.relayd_proc import RelaydProcess, live_children, live_members
from tests.support.users import system_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change users")
OWNER, ANN, BOB = "relaydtowner", "relaydtann", "relaydtbob"
NOBODY = pwd.getpwnam("nobody")


@pytest.fixture(scope="module")
def users():
    return {name: system_user(name) for name in (OWNER, ANN, BOB)}


@pytest.fixture
def mail_base(open_directory):  # noqa: F811 (the imported fixture)
    base = open_directory / "mail"
    base.mkdir(mode=0o755)
    return base


def start(open_directory, sink, mail_base, extra: str = "") -> RelaydProcess:  # noqa: F811
    return RelaydProcess(open_directory / "relayd", sink.port,
                         f"alias_maps =\nrelayd_maildir_base = {mail_base}\n" + extra,
                         mail_owner=OWNER).start()


def send(relayd, recipients, subject="local", smtp=None) -> None:
    body = f"Subject: {subject}\r\n\r\nfor you\r\n".encode()
    if smtp is not None:
        smtp.sendmail("sender@example.org", recipients, body)
        return
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.sendmail("sender@example.org", recipients, body)


def new_files(maildir):
    new = maildir / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def local_process(relayd) -> int:
    return wait_until(lambda: next((pid for pid in live_children(relayd.proc.pid)
                                    if process_name(pid) == "relayd/local"), 0),
                      what="the relayd/local process", relayd=relayd)


def test_each_recipient_owns_the_files_written_for_them(users, open_directory, sink,  # noqa: F811
                                                        mail_base):
    relayd = start(open_directory, sink, mail_base)
    try:
        send(relayd, [f"{ANN}@relayd.test", f"{BOB}@relayd.test", "root@relayd.test"])
        for name, owner in ((ANN, users[ANN]), (BOB, users[BOB]), ("root", NOBODY)):
            (path,) = wait_until(lambda: new_files(mail_base / name / "Maildir"),
                                 what=f"{name}'s message", relayd=relayd)
            st = path.stat()
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == \
                (owner.pw_uid, owner.pw_gid, 0o600)
            for directory in (mail_base / name, mail_base / name / "Maildir",
                              mail_base / name / "Maildir" / "new"):
                st = directory.stat()
                assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (owner.pw_uid, 0o700)
            text = path.read_text()
            assert text.startswith("Return-Path: <sender@example.org>\nX-Original-To: ")
            assert f"Delivered-To: {name}@relayd.test\n" in text
        log = relayd.wait_log(f"to=<{BOB}@relayd.test>")
        assert "status=sent (delivered to maildir)" in log
        for pid in workers_of(relayd.proc.pid):   # the workers never have root, nor CAP_SETUID
            assert uids(pid) == [users[OWNER].pw_uid] * 4
            assert capabilities(pid) == {"CapEff": 0, "CapPrm": 0}
        assert uids(local_process(relayd))[1] == 0
    finally:
        relayd.stop()


def capabilities(pid: int) -> dict[str, int]:
    """The effective and permitted capability sets of ``pid``."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if line.startswith(("CapEff", "CapPrm")))
    return {name: int(value, 16) for name, value in fields.items()}


def _as_user(path, account) -> None:
    os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)


def test_a_symlink_in_the_recipients_maildir_path_is_not_followed(users, open_directory,  # noqa: F811
                                                                  sink, mail_base):
    ann, bob = users[ANN], users[BOB]
    victim = open_directory / "victim"   # a directory neither recipient owns
    victim.mkdir(mode=0o777)
    # ann: Maildir/new -> the victim; bob: Maildir -> ann's Maildir; root (as nobody): tmp -> victim.
    for name, account in ((ANN, ann), (BOB, bob), ("root", NOBODY)):
        (mail_base / name).mkdir(mode=0o700)
        _as_user(mail_base / name, account)
    (mail_base / ANN / "Maildir").mkdir(mode=0o700)
    _as_user(mail_base / ANN / "Maildir", ann)
    (mail_base / ANN / "Maildir" / "new").symlink_to(victim)
    _as_user(mail_base / ANN / "Maildir" / "new", ann)
    (mail_base / BOB / "Maildir").symlink_to(mail_base / ANN / "Maildir")
    _as_user(mail_base / BOB / "Maildir", bob)
    (mail_base / "root" / "Maildir").mkdir(mode=0o700)
    _as_user(mail_base / "root" / "Maildir", NOBODY)
    (mail_base / "root" / "Maildir" / "tmp").symlink_to(victim)
    _as_user(mail_base / "root" / "Maildir" / "tmp", NOBODY)
    relayd = start(open_directory, sink, mail_base)
    try:
        send(relayd, [f"{ANN}@relayd.test", f"{BOB}@relayd.test", "root@relayd.test"])
        log = wait_until(lambda: all(f"to=<{r}@relayd.test>" in relayd.log()
                                     for r in (ANN, BOB, "root")) and relayd.log(),
                         what="three delivery lines", relayd=relayd)
        lines = [line for line in log.splitlines() if "relayd/local[" in line and "to=<" in line]
        for name, where in ((ANN, f"{mail_base}/{ANN}/Maildir/new"),
                            (BOB, f"{mail_base}/{BOB}/Maildir"),
                            ("root", f"{mail_base}/root/Maildir/tmp")):
            (line,) = [line for line in lines if f"to=<{name}@relayd.test>" in line]
            assert "dsn=4.2.0, status=deferred (maildir delivery failed: open " \
                f"{where}: is a symbolic link, which local delivery never follows)" in line, line
        assert list(victim.iterdir()) == []
        assert list((mail_base / ANN / "Maildir" / "tmp").iterdir()) == []   # nothing left behind
    finally:
        relayd.stop()


def test_a_killed_local_process_is_restarted_and_no_session_ends(users, open_directory,  # noqa: F811
                                                                 sink, mail_base):
    relayd = start(open_directory, sink, mail_base)
    try:
        first = local_process(relayd)
        with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
            smtp.ehlo()
            os.kill(first, signal.SIGKILL)
            relayd.wait_log(f"warning: process relayd/local pid {first} killed by signal 9")
            send(relayd, [f"{ANN}@relayd.test"], smtp=smtp)   # the same session goes on
        second = wait_until(lambda: local_process(relayd) != first and local_process(relayd),
                            what="a new relayd/local process", relayd=relayd)
        assert second != first
        wait_until(lambda: new_files(mail_base / ANN / "Maildir"), what="ann's message",
                   relayd=relayd)
        assert relayd.stop() == 0
        # Stopped with the master: nothing of relayd is left (zombies aside).
        wait_until(lambda: not live_members(relayd.proc.pid), what="every relayd process gone")
    finally:
        relayd.stop()


def test_the_local_socket_refuses_any_peer_but_mail_owner(users, open_directory, sink,  # noqa: F811
                                                          mail_base):
    relayd = start(open_directory, sink, mail_base)
    try:
        path = relayd.spool / "private" / "local"
        st, directory = path.stat(), path.parent.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (users[OWNER].pw_uid, 0o600)
        assert (directory.st_uid, stat.S_IMODE(directory.st_mode)) == (users[OWNER].pw_uid, 0o700)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:   # we are root
            sock.settimeout(10)
            sock.connect(str(path))
            try:
                sock.sendall(b"\x00\x04\x00\x00\x00\x01root\n")
                answer = sock.recv(100)
            except (BrokenPipeError, ConnectionResetError):   # closed before or after our request
                answer = b""
            assert answer == b""
        relayd.wait_log("warning: private/local: refusing a connection from uid 0 pid "
                        f"{os.getpid()}: not mail_owner")
        assert not (mail_base / "root").exists()
        # Another local user does not even reach it: private/ is mail_owner's, 0700.
        ann = users[ANN]
        probe = subprocess.run(["setpriv", f"--reuid={ann.pw_uid}", f"--regid={ann.pw_gid}",
                                "--clear-groups", sys.executable, "-c",
                                "import socket, sys; s = socket.socket(socket.AF_UNIX); "
                                "s.connect(sys.argv[1])", str(path)],
                               capture_output=True, text=True, timeout=30)
        assert probe.returncode != 0 and "PermissionError" in probe.stderr
    finally:
        relayd.stop()


def test_home_mailbox_is_the_recipients_maildir_in_their_home(users, open_directory, sink,  # noqa: F811
                                                              mail_base):
    ann = users[ANN]
    maildir = os.path.join(ann.pw_dir, "Maildir")
    shutil.rmtree(maildir, ignore_errors=True)  # a previous run's
    relayd = start(open_directory, sink, mail_base, "home_mailbox = Maildir/\n")
    try:
        send(relayd, [f"{ANN}@relayd.test"])
        (path,) = wait_until(lambda: new_files(Path(maildir)), what="ann's message",
                             relayd=relayd)
        assert (path.stat().st_uid, stat.S_IMODE(path.stat().st_mode)) == (ann.pw_uid, 0o600)
        assert not (mail_base / ANN).exists()
    finally:
        relayd.stop()
        shutil.rmtree(maildir, ignore_errors=True)

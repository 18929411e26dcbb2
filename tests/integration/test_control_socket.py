"""The control socket: only root and relayd's own user, bounded in time and size."""
import json
import os
import pwd
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import pytest

from relayd.cli.queue_cmd import queue_operation
from relayd.control import MAX_REQUEST, socket_path
from tests.integration.test_relay_path import send
from tests.support.relayd_proc import RelaydProcess

HELD = "relayd_worker_processes = 1\nminimal_backoff_time = 300s\nmaximal_backoff_time = 600s\n"


@pytest.fixture
def public_relayd(sink):
    """A one-worker relayd with a deferred message, in a directory other users
    may traverse (pytest's own tmp directories are private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="relayd-ctl-"))
    directory.chmod(0o711)
    sink.stop()  # the smart host is down: the message stays queued
    proc = RelaydProcess(directory, sink.port, HELD + "ipc_timeout = 1s\n")
    try:
        proc.start()
        send(proc, "a@example.org", ["b@relay.example"], b"Subject: keep\r\n\r\nx\r\n")
        proc.wait_log("status=deferred")
        yield proc
    finally:
        proc.stop()
        shutil.rmtree(directory, ignore_errors=True)


def queued(proc) -> int:
    listing = proc.command("mailq").stdout
    assert "Request" in listing, listing
    return int(listing.rsplit(" in ", 1)[1].split()[0])


def as_nobody(path: str, request: bytes) -> tuple[int, dict]:
    """Fork a child that becomes ``nobody``, sends ``request`` to the socket at
    ``path`` and reports what happened; (its pid, the report)."""
    nobody = pwd.getpwnam("nobody")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(10)
                    s.connect(path)
                    try:
                        s.sendall(request)
                    except BrokenPipeError:
                        pass  # refused before the request was read: read the refusal
                    report = {"answer": s.makefile("rb").readline().decode()}
            except OSError as exc:
                report = {"error": type(exc).__name__}
            os.write(w, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        report = json.loads(pipe.read())
    os.waitpid(pid, 0)
    return pid, report


def test_socket_is_private_to_its_owner(public_relayd):
    path = socket_path(str(public_relayd.spool))
    assert os.stat(path).st_mode & 0o777 == 0o600
    _, report = as_nobody(path, b"delete ALL\n")
    assert report == {"error": "PermissionError"}
    assert queued(public_relayd) == 1


def test_other_users_are_refused_by_peer_credentials(public_relayd):
    # Even if the socket's mode lets another user in (an admin's chmod, a shared
    # group; the queue directory itself is 0700), its peer credentials are checked:
    # nothing is deleted.
    path = socket_path(str(public_relayd.spool))
    os.chmod(public_relayd.spool, 0o711)
    os.chmod(path, 0o666)
    pid, report = as_nobody(path, b"delete ALL\n")
    assert report == {"answer": "error permission denied: only root and the mail system "
                                "owner may use this socket\n"}
    public_relayd.wait_log(f"warning: {path}: refusing control request from uid 65534 pid {pid}")
    assert queued(public_relayd) == 1
    # root (the test) may: the message is deleted.
    result = public_relayd.command("queue", "delete", "ALL")
    assert "Deleted: 1 message" in result.stderr
    assert public_relayd.command("mailq").stdout == "Mail queue is empty\n"


def test_silent_client_is_cut_off_and_does_not_block_others(public_relayd):
    path = socket_path(str(public_relayd.spool))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.settimeout(15)
        silent.connect(path)
        assert queued(public_relayd) == 1  # a second client is served meanwhile
        assert silent.recv(100) == b""  # disconnected after ipc_timeout
    public_relayd.wait_log("control request from uid 0 pid")


def test_oversized_request_is_refused(public_relayd):
    path = socket_path(str(public_relayd.spool))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(path)
        # A valid command padded past the bound must not be cut down and run.
        try:
            s.sendall(b"delete ALL" + b" " * MAX_REQUEST + b"\n")
        except BrokenPipeError:
            pass
        assert s.makefile("rb").readline() == b"error request longer than 65536 bytes\n"
    assert queued(public_relayd) == 1


def test_cli_as_another_user_says_permission_denied(public_relayd):
    os.chmod(socket_path(str(public_relayd.spool)), 0o666)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            sys.stderr = open(w, "w")
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            status = queue_operation(str(public_relayd.spool), ["delete", "ALL"])
            sys.stderr.flush()
            os._exit(status)
        finally:
            os._exit(1)
    os.close(w)
    with os.fdopen(r) as pipe:
        stderr = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 77
    assert stderr == ("relayd: fatal: permission denied: only root and the mail system owner "
                      "may use this socket\n")
    assert queued(public_relayd) == 1


def test_client_that_does_not_read_the_answer_is_cut_off(public_relayd):
    # An answer larger than the socket buffer: three messages of 1000 long recipients.
    rcpts = [f"r{n}-{'x' * 70}@relay.example" for n in range(1000)]
    for _ in range(3):
        send(public_relayd, "a@example.org", rcpts, b"Subject: wide\r\n\r\nx\r\n")
    path = socket_path(str(public_relayd.spool))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(path)
        s.sendall(b"list\n")
        public_relayd.wait_log(f"warning: {path}: cannot send control answer")
        answer = s.makefile("rb").read()  # what was sent before the deadline, then EOF
        assert 0 < len(answer) < 3 * 1000 * 80 and not answer.endswith(b"\n")

"""smtpd_client_connection_count_limit counted exactly across two workers."""
import os
import signal
import socket
import time

import pytest

LIMITED = ("relayd_worker_processes = 2\nmynetworks = 127.0.0.1/32\n"
           "smtpd_client_connection_count_limit = 3\n")
CLIENT = "127.0.0.2"  # outside mynetworks: limited


def connect(port: int, source: str = CLIENT) -> tuple[socket.socket, bytes]:
    s = socket.socket()
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s, s.recv(1024)


def open_until_refused(port: int) -> tuple[list[socket.socket], bytes]:
    """Connections from CLIENT until one is refused: (the served ones, the refusal)."""
    served = []
    for _ in range(8):
        s, greeting = connect(port)
        if not greeting.startswith(b"220"):
            s.close()
            return served, greeting
        served.append(s)
    return served, b""


def worker_of(sock: socket.socket) -> int:
    """The pid of the process holding the server side of ``sock`` (from /proc:
    the TCP socket whose remote end is ``sock``, then the process with its inode)."""
    host, port = sock.getsockname()
    remote = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/tcp") as f:
        # The established socket: a closed one of an earlier round may still be
        # listed with the same remote end (TIME_WAIT, inode 0).
        inode = next(fields[9] for fields in map(str.split, f)
                     if fields[2] == remote and fields[3] == "01" and fields[9] != "0")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]"
                   for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no process holds the server side of {host}:{port}")


def close_all(socks) -> None:
    for s in socks:
        s.close()


def served_when_settled(port: int, want: int = 3, timeout: float = 15.0):
    """open_until_refused, again until ``want`` are served (closed sessions are
    uncounted when their worker has seen the close) or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        served, refusal = open_until_refused(port)
        if len(served) == want or time.monotonic() > deadline:
            return served, refusal
        close_all(served)
        time.sleep(0.05)


REFUSAL = b"421 4.7.0 relayd.test Error: too many connections from 127.0.0.2\r\n"


def test_per_client_limit_is_exact_across_workers(relayd_factory):
    relayd = relayd_factory(LIMITED)
    workers_seen = set()
    for _ in range(12):  # until both workers have served this client
        served, refusal = served_when_settled(relayd.port)
        try:
            assert len(served) == 3 and refusal == REFUSAL
            workers_seen |= {worker_of(s) for s in served}
        finally:
            close_all(served)
        if len(workers_seen) == 2:
            break
    assert len(workers_seen) == 2, "one worker took every connection"
    relayd.wait_log("warning: Connection concurrency limit exceeded: 4 from unknown[127.0.0.2]")

    served, refusal = served_when_settled(relayd.port)
    try:
        assert len(served) == 3 and refusal == REFUSAL
        served.pop().close()  # closing one lets another in
        more, refusal = served_when_settled(relayd.port, want=1)
        assert len(more) == 1 and refusal == REFUSAL
        served += more
        # mynetworks is exempt: 127.0.0.1 gets in beside the limited client.
        local = [connect(relayd.port, "127.0.0.1") for _ in range(4)]
        assert all(greeting.startswith(b"220") for _, greeting in local)
        close_all(s for s, _ in local)
    finally:
        close_all(served)


def test_a_killed_workers_sessions_are_uncounted(relayd_factory):
    relayd = relayd_factory(LIMITED)
    for _ in range(12):
        served, refusal = served_when_settled(relayd.port)
        assert len(served) == 3 and refusal == REFUSAL
        owners = {worker_of(s) for s in served}
        if len(owners) == 2:
            break
        close_all(served)
    else:
        pytest.fail("one worker took every connection")
    victim = worker_of(served[0])
    os.kill(victim, signal.SIGKILL)
    relayd.wait_log(f"process relayd/worker pid {victim} killed by signal 9")
    # The dead worker never said its sessions ended; the master uncounts them.
    close_all(served)
    served, refusal = served_when_settled(relayd.port)
    try:
        assert len(served) == 3 and refusal == REFUSAL
    finally:
        close_all(served)

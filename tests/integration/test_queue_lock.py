"""One relayd per queue directory: a second instance is refused before it touches the queue."""
import logging
import os
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import relayd
from relayd.queue.lock import DirectoryLock, QueueLocked
from tests.integration.test_daemon import wait_until
from tests.support.relayd_proc import RelaydProcess

BIG = 400 << 10   # past the 256 KiB inline limit: the content spills to data/<qid>


def _data_files(spool: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in spool.rglob("data/*")}


def _start_transaction(port: int):
    """A client half-way through DATA of a large message (its data file exists)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = sock.makefile("rb")
    f.readline()
    for command in (b"EHLO client.test", b"MAIL FROM:<big@example.org>",
                    b"RCPT TO:<inflight@relay.example>", b"DATA"):
        sock.sendall(command + b"\r\n")
        line = f.readline()
        while line[3:4] == b"-":
            line = f.readline()
        assert line[:1] in (b"2", b"3"), line
    sock.sendall(b"Subject: in flight\r\n\r\n" + (b"y" * 998 + b"\r\n") * (BIG // 1000))
    return sock, f


def test_a_second_relayd_on_the_same_queue_exits_1_and_leaves_it_alone(relayd, sink, tmp_path):
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
        smtp.sendmail("a@example.org", ["before@relay.example"], b"Subject: before\r\n\r\nhi\r\n")
    client, replies = _start_transaction(relayd.port)
    spilled = wait_until(lambda: _data_files(relayd.spool), timeout=20.0, what="the in-flight data file")

    for workers in ("auto", "1", "3"):   # a master with workers, or a single process
        second = RelaydProcess(tmp_path / f"second-{workers}", sink.port,
                               f"queue_directory = {relayd.spool}\n"
                               f"relayd_worker_processes = {workers}\n")
        # A valid configuration (the start checks mail_owner's account before the lock).
        done = subprocess.run([sys.executable, "-m", "relayd", "-c", str(second.directory),
                               "-o", f"mail_owner={second.mail_owner}"],
                              capture_output=True, text=True, timeout=60)
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert "fatal: the relayd mail system is already running" in output
        assert str(relayd.spool) in output and f"process {relayd.proc.pid}" in output
        with pytest.raises(OSError):   # it never bound its port
            socket.create_connection(("127.0.0.1", second.port), timeout=2).close()

    # The first relayd's in-flight file is untouched and its transaction completes.
    assert all(path.exists() and path.stat().st_size >= size for path, size in spilled.items())
    client.sendall(b".\r\n")
    assert replies.readline().startswith(b"250 ")
    client.sendall(b"QUIT\r\n")
    client.close()
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
        smtp.sendmail("a@example.org", ["after@relay.example"], b"Subject: after\r\n\r\nhi\r\n")
    wait_until(lambda: len(sink.messages) >= 3, timeout=20.0, what="three deliveries")
    by_rcpt = {m.recipients[0]: m for m in sink.messages}
    assert set(by_rcpt) == {"before@relay.example", "inflight@relay.example",
                            "after@relay.example"}
    assert by_rcpt["inflight@relay.example"].data.count(b"y" * 998) == BIG // 1000


def test_the_embedding_api_takes_the_queue_lock(tmp_path, sink):
    queue = str(tmp_path / "queue")
    options = dict(listen=[("127.0.0.1", 0)], queue_directory=queue, mynetworks="127.0.0.0/8",
                   relayhost=f"[127.0.0.1]:{sink.port}")
    first = relayd.Relay(**options)
    first.start()
    try:
        with pytest.raises(QueueLocked) as refused:
            relayd.Relay(**options).start()
        assert refused.value.directory == queue and refused.value.pid == os.getpid()
    finally:
        first.stop(timeout=5)
    again = relayd.Relay(**options)   # stop() gave the queue up
    again.start()
    again.stop(timeout=5)


def test_an_orphaned_worker_queue_held_by_another_process_is_not_adopted(tmp_path, sink, caplog):
    base = tmp_path / "queue"
    orphan = base / "worker-3"       # left by a relayd that ran 4 workers; worker 1 of 2 adopts it
    orphan.mkdir(parents=True)
    holder = DirectoryLock(str(orphan))
    holder.acquire()
    options = dict(listen=[("127.0.0.1", 0)], queue_directory=str(base), worker=1, workers=2,
                   relayhost=f"[127.0.0.1]:{sink.port}")
    try:
        with caplog.at_level(logging.WARNING, logger="relayd.master"):
            relay = relayd.Relay(**options)
            relay.start()
        assert [s.directory for s in relay.stores] == [str(base / "worker-1")]
        assert f"queue {orphan} not adopted: locked by process {os.getpid()}" in caplog.text
        assert not (orphan / "journal").exists()   # not recovered, not touched
        relay.stop(timeout=5)
    finally:
        holder.release()
    relay = relayd.Relay(**options)                 # free now: adopted
    relay.start()
    assert [s.directory for s in relay.stores] == [str(base / "worker-1"), str(orphan)]
    relay.stop(timeout=5)

"""A session killed while a threadpool thread writes its spilled content never
lets that thread's writes land in another file.

Produced for real: the data file of the message is a FIFO that the test
reads from, a "disk" that stalls on demand: the thread blocks in write(2)
in the kernel, the session misses its deadline and the sweeper kills it,
as it would a session stuck on a slow disk. The test then opens files that
would take a descriptor number closed too early, and lets the thread go on.
"""
import logging
import os
import re

import gevent
from gevent import socket

import relayd


def _command(sock, reader, line: bytes) -> bytes:
    sock.sendall(line + b"\r\n")
    reply = reader.readline()
    while reply[3:4] == b"-":
        reply = reader.readline()
    return reply


def _read_fifo_to_eof(fd: int) -> int:
    total = 0
    with gevent.Timeout(20):
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                gevent.sleep(0.01)
                continue
            if not chunk:
                return total
            total += len(chunk)


def test_a_session_killed_mid_spill_never_writes_into_another_file(tmp_path, sink, caplog):
    queue_dir = tmp_path / "queue"
    relay = relayd.Relay(listen=[("127.0.0.1", 0)], queue_directory=str(queue_dir),
                         relayhost=f"[127.0.0.1]:{sink.port}", mynetworks="127.0.0.0/8",
                         smtpd_timeout="1s")
    caplog.set_level(logging.INFO, logger="relayd")
    relay.start()
    victims, sender = [], None
    try:
        sock = socket.create_connection(relay.addresses[0])
        reader = sock.makefile("rb")
        reader.readline()
        for line in (b"EHLO client.test", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.net>"):
            assert _command(sock, reader, line)[:1] == b"2"
        qid = re.search(r"(\w+): client=", caplog.text).group(1)
        fifo = queue_dir / "data" / qid
        os.mkfifo(fifo)
        fifo_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        assert _command(sock, reader, b"DATA")[:3] == b"354"
        body = b"Subject: stalls\r\n\r\n" + (b"z" * 78 + b"\r\n") * 8000   # 640 KB, many lines
        sender = gevent.spawn(sock.sendall, body)   # blocks once the stalled session stops reading
        with gevent.Timeout(20):
            while "timeout after" not in caplog.text:
                gevent.sleep(0.05)
        # Descriptors the kernel hands out now would be the data file's, were it closed already.
        victims = [os.open(tmp_path / f"victim{n}", os.O_WRONLY | os.O_CREAT, 0o600)
                   for n in range(20)]
        received = _read_fifo_to_eof(fifo_fd)   # let the stalled thread write on; EOF: closed
        os.close(fifo_fd)
        with gevent.Timeout(10):
            while fifo.exists():   # the aborted data file is removed once the thread is done
                gevent.sleep(0.02)
    finally:
        if sender is not None:
            sender.kill()
        for fd in victims:
            os.close(fd)
        relay.stop(timeout=5)
    assert [os.path.getsize(tmp_path / f"victim{n}") for n in range(20)] == [0] * 20
    assert received > 256 << 10   # the thread wrote on after the kill, into the FIFO only
    assert "Bad file descriptor" not in caplog.text

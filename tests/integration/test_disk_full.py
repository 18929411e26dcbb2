"""A full queue file system, on a real (small tmpfs) file system: MAIL FROM gets
452 4.3.1 below queue_minfree / 1.5 x message_size_limit, a message that does
not fit gets 451 4.3.0 at the end of DATA and the session goes on, and every
message that got 250 is delivered."""
import logging
import os
import subprocess

import gevent
import pytest
from gevent import socket

import relayd
from relayd.smtp.replies import R451_QUEUE_WRITE_ERROR, R452_INSUFFICIENT_STORAGE

SIZE_LIMIT = 500_000       # 1.5 x = 750,000 bytes
MIN_FREE = 900_000         # queue_minfree above that: it decides


@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def _fill_to(mount, free: int) -> None:
    """Grow (or shrink) the filler file so that about ``free`` bytes stay available."""
    filler = mount / "filler"
    have = filler.stat().st_size if filler.exists() else 0
    st = os.statvfs(mount)
    target = max(0, have + st.f_bavail * st.f_frsize - free)
    with open(filler, "ab") as f:
        f.truncate(min(have, target))
        f.seek(0, os.SEEK_END)
        while f.tell() < target:
            f.write(b"\0" * min(1 << 16, target - f.tell()))


class Client:
    def __init__(self, address):
        self.sock = socket.create_connection(address)
        self.reader = self.sock.makefile("rb")
        self.reply()

    def reply(self) -> bytes:
        line = self.reader.readline()
        while line[3:4] == b"-":
            line = self.reader.readline()
        return line.rstrip()

    def command(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def message(self, rcpt: str, body_size: int) -> bytes:
        assert self.command(f"RCPT TO:<{rcpt}>").startswith(b"250")
        assert self.command("DATA").startswith(b"354")
        line = b"x" * 98 + b"\r\n"
        self.sock.sendall(b"Subject: " + rcpt.encode() + b"\r\n\r\n"
                          + line * (body_size // len(line)) + b".\r\n")
        return self.reply()

    def mail_when(self, prefix: bytes) -> bytes:
        """MAIL FROM until its reply starts with ``prefix`` (the free space is read once a second)."""
        with gevent.Timeout(10):
            while True:
                reply = self.command("MAIL FROM:<s@example.org>")
                if reply.startswith(prefix):
                    return reply
                if reply.startswith(b"250"):
                    self.command("RSET")
                gevent.sleep(0.1)


def test_a_full_queue_file_system_is_refused_politely_and_loses_nothing(small_fs, sink, caplog):
    queue_dir = small_fs / "queue"
    relay = relayd.Relay(listen=[("127.0.0.1", 0)], queue_directory=str(queue_dir),
                         relayhost=f"[127.0.0.1]:{sink.port}", mynetworks="127.0.0.0/8",
                         queue_minfree=str(MIN_FREE), message_size_limit=str(SIZE_LIMIT),
                         smtpd_soft_error_limit="100", smtpd_hard_error_limit="100",
                         smtpd_peername_lookup="no")   # the client is unknown[127.0.0.1]
    caplog.set_level(logging.WARNING, logger="relayd.queue")
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    relay.start()
    try:
        _fill_to(small_fs, 800_000)   # above 1.5 x message_size_limit, below queue_minfree
        client = Client(relay.addresses[0])
        assert client.command("EHLO client.test").startswith(b"250")
        assert client.mail_when(b"452") == R452_INSUFFICIENT_STORAGE.to_bytes().rstrip()
        assert "not enough free space in mail queue" in caplog.text
        # As smtpd_check_queue logs it (before the sender is taken: no from=<...>).
        assert ("NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 452 4.3.1 Insufficient system "
                "storage; proto=ESMTP helo=<client.test>") in caplog.messages

        _fill_to(small_fs, 1_600_000)
        client.mail_when(b"250")
        assert client.message("small1@example.net", 2_000).startswith(b"250")
        client.mail_when(b"250")
        _fill_to(small_fs, 200_000)   # another writer fills the disk during this transaction
        reply = client.message("big@example.net", 450_000)   # spills to a data file: ENOSPC
        assert reply == R451_QUEUE_WRITE_ERROR.to_bytes().rstrip()
        assert client.command("RSET").startswith(b"250")   # the session goes on

        _fill_to(small_fs, 1_600_000)
        client.mail_when(b"250")
        _fill_to(small_fs, 100_000)
        reply = client.message("inline@example.net", 200_000)   # inline: the journal write fails
        assert reply == R451_QUEUE_WRITE_ERROR.to_bytes().rstrip()

        os.unlink(small_fs / "filler")
        client.mail_when(b"250")
        assert client.message("small2@example.net", 2_000).startswith(b"250")
        client.mail_when(b"250")
        assert client.message("big2@example.net", 450_000).startswith(b"250")
        assert client.command("QUIT").startswith(b"221")

        with gevent.Timeout(20):
            while len(sink.messages) < 3:
                gevent.sleep(0.05)
    finally:
        relay.stop(timeout=5)
    delivered = sorted(m.recipients[0] for m in sink.messages)
    assert delivered == ["big2@example.net", "small1@example.net", "small2@example.net"]
    assert not list((queue_dir / "data").iterdir())   # the failed data file did not stay


def test_free_space_below_one_and_a_half_message_size_limits_refuses_new_mail(small_fs):
    """queue_minfree = 0: the 1.5 x message_size_limit rule alone decides."""
    from relayd.queue.store import QueueStore

    def has_room(free: int) -> bool:
        _fill_to(small_fs, free)
        store = QueueStore(str(small_fs), message_size_limit=SIZE_LIMIT)
        return store.has_room()

    assert not has_room(700_000)
    assert has_room(800_000)
    assert QueueStore(str(small_fs), message_size_limit=0).has_room()   # 0: no size limit

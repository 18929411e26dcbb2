"""Exclusive locks on queue directories, as Postfix's master.lock.

Recovery removes data files that no message in the journal refers to and
cuts damaged segment tails, which is right only when no other process is
writing that queue. So the process that owns a queue holds ``queue.lock``
in its directory (an ``flock``: released by the kernel when the process
dies, however it dies) from before recovery until the queue is closed; the
relayd master, or the single relayd process, also holds ``master.lock`` in
``queue_directory`` for its whole life. The holder writes its pid in the
file so that a refused process can name it.
"""
from __future__ import annotations

import errno
import fcntl
import os

QUEUE_LOCK = "queue.lock"
MASTER_LOCK = "master.lock"


class QueueLocked(Exception):
    """Another process holds the lock of this queue directory."""

    def __init__(self, directory: str, pid: int | None):
        self.directory = directory
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"the relayd mail system is already running: "
                         f"queue directory {directory} is locked by {holder}")


class DirectoryLock:
    """``acquire()`` without waiting (QueueLocked when held elsewhere), ``release()``."""

    def __init__(self, directory: str, name: str = QUEUE_LOCK):
        self.directory = directory
        self.path = os.path.join(directory, name)
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self) -> None:
        """Take the lock now, or raise QueueLocked naming the holder's pid when known."""
        if self._fd >= 0:
            return
        # O_CLOEXEC: a program the relay runs (pipe transport) must not inherit the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise QueueLocked(self.directory, pid) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid():>10}\n".encode(), 0)   # Postfix's pid file layout
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (the file stays: removing it could race a new holder)."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None

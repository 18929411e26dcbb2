"""One message into one Maildir, never through a symlink: maildir(5) as local(8) writes it.

Where the mailbox is (:class:`MailboxPlace`): with ``home_mailbox`` empty,
``BASE/USER/Maildir`` (BASE is ``relayd_maildir_base``, else
``$queue_directory/../mail``); with ``home_mailbox = Maildir/`` (Postfix's
form: a trailing slash means Maildir), ``HOME/Maildir`` of the recipient's
account.

The path is walked one component at a time from a directory the recipient
cannot change (BASE, or the home directory itself), each opened with
``O_NOFOLLOW | O_DIRECTORY`` relative to the one before (openat(2)), and
the message file is created relative to ``tmp/``'s descriptor. So a symlink
the recipient put anywhere in ``Maildir``, ``tmp`` or ``new`` makes the
delivery fail (ELOOP/ENOTDIR: deferred) instead of writing where it points.
Missing directories are created mode 0700 by whoever runs this: the
recipient, in the privileged delivery process (relayd.delivery.mailbox_service).

The write is maildir(5)'s: ``tmp/UNIQUE``, fsync, rename into ``new/``,
fsync ``new/`` (the rename must survive a crash before "sent" is said).
"""
from __future__ import annotations

import errno
import itertools
import os
import re
import stat
import time

from relayd.queue.outcome import BOUNCED, DEFERRED, Outcome

__all__ = ["MailboxPlace", "SAFE_USER", "failure", "open_directory", "open_trusted",
           "unique_name", "write_below", "write_message"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

#: A user name that is safe as one path component under the maildir base.
SAFE_USER = re.compile(r"[a-z0-9_][a-z0-9._=+-]{0,63}")
_sequence = itertools.count(1)


class MailboxPlace:
    """Where a user's Maildir is, from ``home_mailbox`` and the maildir base."""

    def __init__(self, config):
        self.home_mailbox = config["home_mailbox"]
        base = config["relayd_maildir_base"]
        if not base:
            base = os.path.join(os.path.dirname(config["queue_directory"].rstrip("/")), "mail")
        self.base = base

    @property
    def in_home(self) -> bool:
        """home_mailbox names a Maildir under the recipient's home directory."""
        return bool(self.home_mailbox)

    def home_components(self) -> list[str]:
        """home_mailbox's path components below the home directory."""
        parts = [p for p in self.home_mailbox.split("/") if p]
        if not self.home_mailbox.endswith("/") or not parts or ".." in parts:
            # Postfix's home_mailbox without the slash is an mbox file, which relayd does not write.
            raise ValueError(f"home_mailbox = {self.home_mailbox}: relayd delivers to a Maildir "
                             "only (a relative path ending in /)")
        return parts


def open_trusted(path: str) -> int:
    """Open a directory the recipient cannot change (BASE, a home directory
    itself), through the symlinks an admin may have put on the way."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_directory(name: str, dir_fd: int, path: str) -> int:
    """Open the directory ``name`` in ``dir_fd`` (``path`` names it in errors),
    creating it (mode 0700) when missing; never through a symlink."""
    try:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            pass  # another delivery made it meanwhile: open what is there, as above
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        reason = exc.strerror
        if exc.errno in (errno.ENOTDIR, errno.ELOOP) and _is_symlink(name, dir_fd):
            reason = "is a symbolic link, which local delivery never follows"
        raise OSError(exc.errno, f"open {path}: {reason}") from None


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def unique_name(myhostname: str) -> str:
    """A maildir(5) unique name: time, microseconds, pid, sequence, host."""
    now = time.time()
    host = myhostname.replace("/", r"\057").replace(":", r"\072")
    return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_sequence)}.{host}"


def write_message(maildir_fd: int, maildir: str, data: bytes, myhostname: str) -> str:
    """Deliver ``data`` into the Maildir open as ``maildir_fd`` (its path:
    ``maildir``); the new file's path."""
    fds = {}
    try:
        for sub in ("tmp", "new", "cur"):
            fds[sub] = open_directory(sub, maildir_fd, f"{maildir}/{sub}")
        name = unique_name(myhostname)
        try:
            fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=fds["tmp"])
        except OSError as exc:
            raise OSError(exc.errno, f"create maildir file {maildir}/tmp/{name}: "
                                     f"{exc.strerror}") from None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(name, name, src_dir_fd=fds["tmp"], dst_dir_fd=fds["new"])
        os.fsync(fds["new"])   # the rename itself must survive a crash before we say "sent"
        return f"{maildir}/new/{name}"
    finally:
        for fd in fds.values():
            os.close(fd)



def write_below(top: int, top_path: str, components: list[str], data: bytes,
                myhostname: str) -> str:
    """Walk ``components`` below the directory open as ``top`` (closed here;
    its path ``top_path``), creating what is missing, never through a
    symlink, then write ``data`` into the Maildir they name; the new file's path."""
    fd, path = top, top_path.rstrip("/")
    try:
        for name in components:
            path = f"{path}/{name}"
            fd_next = open_directory(name, fd, path)
            os.close(fd)
            fd = fd_next
        return write_message(fd, path, data, myhostname)
    finally:
        os.close(fd)


def failure(exc: OSError) -> Outcome:
    """Postfix's mbox_dsn(): a full disk or quota bounces (5.2.2), the rest defers."""
    where = f"{exc.filename}: " if exc.filename else ""
    text = f"maildir delivery failed: {where}{exc.strerror or exc}"
    if exc.errno in (errno.EDQUOT, errno.EFBIG):
        return Outcome(BOUNCED, "5.2.2", text, "local")
    return Outcome(DEFERRED, "4.2.0", text, "local")

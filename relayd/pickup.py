"""Postfix's pickup(8): mail that ``sendmail`` left in the maildrop, into the queue.

One relay (worker 0 of the daemon) runs it. It looks into the maildrop at
start, whenever a datagram arrives on ``public/pickup`` (sendmail sends one
after writing a file; anyone may, it carries nothing), and every
``relayd_pickup_wakeup_time`` in case a wake-up was lost. An empty maildrop
costs one directory read per wake-up and nothing in between: no loop spins,
and wake-ups are taken at most ``MAX_SCANS_PER_SECOND`` times a second so
that a local user flooding the socket cannot keep the worker busy.

Each file goes through cleanup as Postfix's pickup hands it on: the
Received: header "by HOST (relayd, from userid N)", the headers cleanup
adds to local submissions when missing (From:, Date:, Message-Id:),
header checks and address rewriting; it is deleted only once the queue
commit is durable (a crash in between delivers it twice, never loses it).
A file that is not one sendmail wrote is logged and removed, as Postfix's
pickup removes one it cannot use.
"""
from __future__ import annotations

import logging
import os
import socket as stdsocket
import time

import gevent
from gevent.event import Event

from relayd import maildrop
from relayd.cleanup.message import Cleanup
from relayd.cleanup.received import rfc2822_date
from relayd.queue.offload import blocking
from relayd.smtp.replies import Reply
from relayd.sockets import bind_in_place, staging_path

log = logging.getLogger("relayd.pickup")

MAX_SCANS_PER_SECOND = 10
FEED_CHUNK = 1 << 16
STALE_TEMP_AGE = 86400   # seconds: no sendmail takes a day between writing and renaming


class Pickup:
    """The maildrop of ``queue_directory`` drained into ``store`` through cleanup."""

    def __init__(self, config, store, queue_directory: str):
        self.config = config
        self.store = store
        self.cleanup = Cleanup(config, store)
        self.queue_directory = queue_directory
        self.directory = maildrop.directory(queue_directory)
        self.wakeup = config["relayd_pickup_wakeup_time"]
        self.size_limit = config["message_size_limit"]
        self._wake = Event()
        self._socket = None
        self._greenlets: list = []
        self._stopping = False

    def start(self) -> None:
        """Create the maildrop and the wake-up socket; start looking."""
        _prepare(self.queue_directory, self.directory)
        self._socket = bind_in_place(os.path.join(self.queue_directory, maildrop.WAKE_SOCKET),
                                     stdsocket.SOCK_DGRAM, 0o622)   # anyone may wake pickup
        self._greenlets = [gevent.spawn(self._listen), gevent.spawn(self._run)]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop looking; a file being queued is finished first (up to ``timeout``)."""
        self._stopping = True
        self._wake.set()
        listener, runner = self._greenlets or (None, None)
        if listener is not None:
            listener.kill()
            runner.join(timeout)
            runner.kill()
        if self._socket is not None:
            self._socket.close()
            try:
                os.unlink(os.path.join(self.queue_directory, maildrop.WAKE_SOCKET))
            except FileNotFoundError:
                pass

    def _listen(self) -> None:
        while True:
            self._socket.recv(16)
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            started = time.monotonic()
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - keep picking up after a surprise
                log.exception("maildrop scan failed")
            self._wake.wait(self.wakeup)
            if self._stopping:
                return
            gevent.sleep(max(0.0, 1.0 / MAX_SCANS_PER_SECOND - (time.monotonic() - started)))

    def scan(self) -> int:
        """Take every complete file now in the maildrop, oldest first; how many were queued.
        Temporary files a sendmail left when it died are removed after a day."""
        names = blocking(os.listdir, self.directory)
        stale = [n for n in names if n.startswith(maildrop.TEMP_PREFIX)]
        if stale:
            blocking(_remove_stale, self.directory, stale, time.time() - STALE_TEMP_AGE)
        names = [n for n in names if not n.startswith(maildrop.TEMP_PREFIX)]
        queued = 0
        for name in sorted(names, key=self._age):
            if self._stopping:
                break
            queued += self.take(os.path.join(self.directory, name))
        return queued

    def _age(self, name: str) -> float:
        try:
            return os.lstat(os.path.join(self.directory, name)).st_mtime
        except OSError:
            return 0.0

    def take(self, path: str) -> int:
        """Queue the file at ``path`` and remove it; 1 when queued, 0 otherwise (a
        bad file is removed, one the queue could not take stays for the next look)."""
        try:
            sub = blocking(maildrop.read, path, 2 * self.size_limit)
        except maildrop.BadMaildropFile as exc:
            uid = _owner(path)
            log.warning("%s: uid=%s: %s: file removed", os.path.basename(path), uid, exc)
            blocking(_remove, path)
            return 0
        outcome = self._queue(sub)
        if outcome is None:
            return 0
        blocking(_remove, path)
        return 1 if outcome else 0

    def _queue(self, sub: maildrop.Submission) -> bool | None:
        """Through cleanup into the queue: True queued, False refused (the file
        goes), None not now (a queue write error: the file stays)."""
        queue_id = self.store.new_queue_id()
        sender = self._qualify(sub.sender)
        content = add_missing_headers(sub.content, sender, sub.full_name, queue_id, sub.mtime,
                                      self.config["myhostname"])
        size = wire_size(content)
        if self.size_limit and size > self.size_limit:
            log.warning("%s: uid=%d from=<%s>: message size %d exceeds size limit %d: "
                        "message removed", queue_id, sub.uid, sender, size, self.size_limit)
            return False
        received = (f"Received: by {self.config['myhostname']} ({self.config['mail_name']}, "
                    f"from userid {sub.uid})\r\n\tid {queue_id}; {rfc2822_date(sub.mtime)}\r\n")
        message = self.cleanup.open(
            queue_id=queue_id, sender=sender, params=dict(sub.params), recipients=sub.recipients,
            client_name="localhost", client_addr="127.0.0.1", helo="", protocol="local",
            actions=[], received=received.encode("utf-8", "replace"))
        log.info("%s: uid=%d from=<%s>", queue_id, sub.uid, sender)
        for start in range(0, len(content), FEED_CHUNK):
            message.feed(content[start:start + FEED_CHUNK])
        refusal = message.end(size)
        outcome = refusal or message.commit([])
        if isinstance(outcome, Reply):
            if outcome.code < 500:
                return None
            log.warning("%s: message from uid %d refused: %s", queue_id, sub.uid, outcome)
            return False
        return True

    def _qualify(self, sender: str) -> str:
        """A bare login name gets @$myorigin, as Postfix's rewriting gives it."""
        if sender and "@" not in sender:
            return f"{sender}@{self.config['myorigin']}"
        return sender


def add_missing_headers(content: bytes, sender: str, full_name: str, queue_id: str,
                        when: float, myhostname: str) -> bytes:
    """The headers cleanup adds to a local submission that lacks them, appended
    to the primary header block: Message-Id:, Date:, From: (no To: header:
    Postfix's undisclosed_recipients_header is empty by default)."""
    end = content.find(b"\r\n\r\n")
    head = content[:end + 2] if end >= 0 else content
    names = {line.split(b":", 1)[0].strip().lower() for line in head.split(b"\r\n")
             if line[:1] not in (b" ", b"\t") and b":" in line}
    added = []   # in cleanup's order
    if b"message-id" not in names:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(when))
        added.append(f"Message-Id: <{stamp}.{queue_id}@{myhostname}>")
    if b"date" not in names:
        added.append(f"Date: {rfc2822_date(when)}")
    if b"from" not in names:
        who = sender or "MAILER-DAEMON"
        added.append(f"From: {full_name} <{who}>" if full_name else f"From: {who}")
    if not added:
        return content
    extra = "".join(line + "\r\n" for line in added).encode("utf-8", "replace")
    if end < 0:   # no header/body separator: the whole message is headers (or empty)
        body_sep = b"" if not content or content.endswith(b"\r\n") else b"\r\n"
        return content + body_sep + extra
    return content[:end + 2] + extra + content[end + 2:]


def wire_size(content: bytes) -> int:
    """The message size in octets once dot-stuffing is undone."""
    return len(content) - content.count(b"\r\n..") - (1 if content.startswith(b"..") else 0)


def _prepare(queue_directory: str, directory: str) -> None:
    """The maildrop (mode 1733) and a queue directory others may traverse (o+x, never
    readable): sendmail's users must reach maildrop/ and public/pickup, nothing else.
    Modes another owner set up (tmpfiles.d, root) are left as they are."""
    os.makedirs(directory, exist_ok=True)
    os.makedirs(os.path.join(queue_directory, "public"), mode=0o755, exist_ok=True)
    for path, mode in ((directory, maildrop.MAILDROP_MODE),
                       (queue_directory, os.stat(queue_directory).st_mode & 0o7777 | 0o111)):
        try:
            os.chmod(path, mode)
        except PermissionError:
            log.warning("%s: cannot set mode %o: %s", path, mode, "not its owner")


def _remove_stale(directory: str, names: list[str], before: float) -> None:
    for name in names:
        path = os.path.join(directory, name)
        try:
            if os.lstat(path).st_mtime < before:
                os.unlink(path)
                log.warning("%s: removed a temporary file older than a day", path)
        except OSError:
            pass


def bound_socket_path(queue_directory: str) -> str:
    """The longest path pickup binds a socket at: the wake-up socket's staging path."""
    return staging_path(os.path.join(queue_directory, maildrop.WAKE_SOCKET))



def wake(queue_directory: str) -> bool:
    """Tell a running relayd to look into the maildrop now; False when none listens
    (or its socket is full: a wake-up is already pending, and sendmail never waits)."""
    try:
        with stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"W", os.path.join(queue_directory, maildrop.WAKE_SOCKET))
        return True
    except OSError:
        return False


def _owner(path: str) -> str:
    try:
        return str(os.lstat(path).st_uid)
    except OSError:
        return "?"


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["Pickup", "wake", "add_missing_headers", "wire_size"]

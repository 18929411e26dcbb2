"""The privileged local delivery process: Postfix's local(8) with unpriv=n.

Workers face the network and run as ``mail_owner`` with no way back to
root, so they cannot write a mailbox as its owner. When relayd starts as
root (and mail_owner is not root), the master binds
``$queue_directory/private/local`` (mode 0600, owned by mail_owner, in a
0700 directory: reachable from a worker chrooted into the queue directory)
and keeps one process of this module running on it, as root, restarted when
it dies and stopped with the master (:class:`MailboxSupervisor`). The
listening socket stays the master's, so a restart loses no connection: a
worker's request waits in the listen queue meanwhile.

A worker sends each mailbox delivery over one connection
(:class:`MailboxClient`): the user name and the mailbox text, and reads the
outcome. The long-lived process accepts only peers whose SO_PEERCRED uid is
mail_owner's and never changes its own uid: it forks one child per
delivery, which reads the request (bounded: the name, and the message at
most message_size_limit + 1 MiB; within ipc_timeout), looks the user up
(passwd), and then, in that child only, becomes the recipient (supplementary
groups, gid, uid) before it writes (relayd.delivery.maildir: no symlink is
followed below a directory the recipient can change). Mail for root
(uid 0) is written as ``default_privs``, as Postfix does. In the
``BASE/USER/Maildir`` layout the child creates ``BASE/USER`` as root and
gives it to the user first (the user cannot write BASE); a ``BASE/USER``
owned by someone else defers the delivery.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import pwd
import select
import signal
import socket
import struct
import time

from gevent import socket as gsocket

from relayd import privileges
from relayd.delivery.maildir import (SAFE_USER, MailboxPlace, failure, open_directory,
                                     open_trusted, write_below)
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT, Outcome
from relayd.sockets import drain

__all__ = ["SOCKET_NAME", "MailboxClient", "MailboxSupervisor", "deliver_as_recipient"]

log = logging.getLogger("relayd.local")

SOCKET_NAME = os.path.join("private", "local")
_HEADER = struct.Struct("!HI")   # user name length, mailbox text length
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
MAX_USER = 256
SLACK = 1 << 20                  # local(8)'s headers and what cleanup added after the size check
MAX_REPLY = 65536
RESTART_DELAY = 1.0              # at most one restart a second, as a worker
_PR_SET_NAME, _PR_SET_PDEATHSIG = 15, 1


def socket_path(queue_directory: str) -> str:
    return os.path.join(queue_directory, SOCKET_NAME)


# -- the worker's side -------------------------------------------------------------------
class MailboxClient:
    """Asks the privileged process to deliver one mailbox (from a gevent worker)."""

    def __init__(self, path: str, timeout: float):
        self.path, self.timeout = path, timeout

    def deliver(self, user: str, data: bytes) -> Outcome:
        """Deliver ``data`` to ``user``'s Maildir; the outcome (deferred when the
        service cannot be reached or does not answer in time)."""
        name = user.encode()
        try:
            with gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                sock.sendall(_HEADER.pack(len(name), len(data)) + name)
                sock.sendall(data)
                reply = _read_line(sock, MAX_REPLY, time.monotonic() + self.timeout)
            answer = json.loads(reply)
            return Outcome(answer["status"], answer["dsn"], answer["text"], "local")
        except (OSError, ValueError, KeyError) as exc:
            return Outcome(DEFERRED, "4.3.0", f"local delivery service {self.path} failed: "
                           f"{exc or 'timeout'}", "local")


def _read_line(sock, limit: int, deadline: float) -> bytes:
    data = b""
    while b"\n" not in data:
        if len(data) > limit:
            raise ValueError("reply too long")
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(8192)
        if not chunk:
            raise ConnectionResetError("connection closed before the reply")
        data += chunk
    return data[:data.index(b"\n")]


# -- one delivery, in its own child process ------------------------------------------------
def deliver_as_recipient(config, user: str, data: bytes) -> Outcome:
    """As root, in a process of its own that ends after it: become ``user``
    (default_privs for root) and write ``data`` into their Maildir."""
    if not SAFE_USER.fullmatch(user):   # the worker checked; a compromised one may not have
        return Outcome(BOUNCED, "5.1.3", f"unsafe mailbox name: {user!r}", "local")
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return Outcome(BOUNCED, "5.1.1", f'unknown user: "{user}"', "local")
    run_as = account
    if account.pw_uid == 0:   # root's mail, as Postfix: never written with root's rights
        default_privs = config["default_privs"]
        try:
            run_as = pwd.getpwnam(default_privs)
        except KeyError:
            return _config_error(f"default_privs: unknown user name value: {default_privs}")
    place = MailboxPlace(config)
    try:
        if place.in_home:
            components = place.home_components()
            _become(run_as)
            top, top_path = open_trusted(account.pw_dir), account.pw_dir.rstrip("/")
        else:
            components = ["Maildir"]
            top, top_path = _user_directory(place.base, user, run_as)
            _become(run_as)
        write_below(top, top_path, components, data, config["myhostname"])
        return Outcome(SENT, "2.0.0", "delivered to maildir", "local")
    except ValueError as exc:
        return _config_error(str(exc))
    except OSError as exc:
        return failure(exc)


def _user_directory(base: str, user: str, run_as) -> tuple[int, str]:
    """BASE/USER opened (as root), created for ``run_as`` when missing; an
    OSError when it belongs to someone else."""
    os.makedirs(base, mode=0o755, exist_ok=True)   # root's; each user reaches their own entry
    base_fd = open_trusted(base)
    path = f"{base.rstrip('/')}/{user}"
    try:
        try:
            os.mkdir(user, 0o700, dir_fd=base_fd)
            created = True
        except FileExistsError:
            created = False
        fd = open_directory(user, base_fd, path)
    finally:
        os.close(base_fd)
    if created:
        os.fchown(fd, run_as.pw_uid, run_as.pw_gid)
    elif os.fstat(fd).st_uid != run_as.pw_uid:
        owner = os.fstat(fd).st_uid
        os.close(fd)
        raise PermissionError(1, f"{path} is owned by uid {owner}, not by {run_as.pw_name}")
    return fd, path


def _become(account) -> None:
    privileges.become(account.pw_uid, account.pw_gid,
                      os.getgrouplist(account.pw_name, account.pw_gid))


def _config_error(text: str) -> Outcome:
    log.warning("%s", text)
    return Outcome(DEFERRED, "4.3.0", f"mail system configuration error: {text}", "local")


# -- the long-lived privileged process -----------------------------------------------------
class MailboxService:
    """Accepts mail_owner's connections and forks one delivery child for each."""

    def __init__(self, config, listener: socket.socket, owner_uid: int):
        self.config, self.listener, self.owner_uid = config, listener, owner_uid
        self.limit = max(1, config["default_process_limit"])
        size = config["message_size_limit"]
        self.max_data = size + SLACK if size else None   # 0: no limit, as message_size_limit
        self.children: set[int] = set()
        self.stopping = False

    def serve(self) -> int:
        """Serve until SIGTERM; in-flight deliveries finish in their own children."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)   # wakes select through the pipe
        for signum in (signal.SIGHUP, signal.SIGINT):   # the master's: it stops or replaces us
            signal.signal(signum, signal.SIG_IGN)
        self.listener.setblocking(False)
        while not self.stopping:
            full = len(self.children) >= self.limit   # the rest waits in the listen queue
            ready = select.select([wake_r] + ([] if full else [self.listener]), [], [], 1.0)[0]
            if wake_r in ready:
                drain(wake_r)
            self._reap()
            if self.listener in ready and not self.stopping:
                self._accept()
        return 0

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def _reap(self) -> None:
        for pid in list(self.children):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                self.children.discard(pid)

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        with conn:
            pid, uid, _ = _PEERCRED.unpack(
                conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
            if uid != self.owner_uid:
                log.warning("%s: refusing a connection from uid %d pid %d: not mail_owner",
                            SOCKET_NAME, uid, pid)
                return
            child = os.fork()
            if child == 0:
                status = 1
                try:
                    self.listener.close()
                    status = self._handle(conn)
                finally:
                    os._exit(status)
            self.children.add(child)

    def _handle(self, conn: socket.socket) -> int:
        """One delivery (in its own child): read, deliver, answer."""
        for signum in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        conn.setblocking(True)
        timeout = self.config["ipc_timeout"]
        try:
            user, data = self._read_request(conn, time.monotonic() + timeout)
        except (OSError, ValueError) as exc:
            log.warning("%s: bad request: %s", SOCKET_NAME, exc or "timeout")
            return 1
        outcome = deliver_as_recipient(self.config, user, data)
        conn.settimeout(timeout)
        conn.sendall(json.dumps({"status": outcome.status, "dsn": outcome.dsn,
                                 "text": outcome.reason}).encode() + b"\n")
        return 0

    def _read_request(self, conn: socket.socket, deadline: float) -> tuple[str, bytes]:
        user_len, data_len = _HEADER.unpack(_read_exactly(conn, _HEADER.size, deadline))
        if user_len > MAX_USER or (self.max_data is not None and data_len > self.max_data):
            raise ValueError(f"request too large ({user_len} + {data_len} bytes)")
        user = _read_exactly(conn, user_len, deadline).decode()
        return user, _read_exactly(conn, data_len, deadline)


def _read_exactly(conn: socket.socket, size: int, deadline: float) -> bytes:
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timeout exceeded")
        conn.settimeout(left)
        n = conn.recv_into(view[got:])
        if not n:
            raise ConnectionResetError("lost connection before a complete request")
        got += n
    return bytes(buf)


# -- the master's side ---------------------------------------------------------------------
class MailboxSupervisor:
    """Binds private/local and keeps one :class:`MailboxService` process on it."""

    def __init__(self, config, account: pwd.struct_passwd):
        self.config, self.account = config, account
        self.pid = 0
        self.restart_at: float | None = None
        self.started = 0.0
        self.expected_exit = False
        self.listener = _bind(socket_path(config["queue_directory"]), account)

    @classmethod
    def for_config(cls, config) -> "MailboxSupervisor | None":
        """A supervisor when started as root with mail_owner not root; else None
        (and a socket left by an earlier root start is removed: workers then
        write mailboxes themselves, as relayd's own user)."""
        account = privileges.mail_owner(config)
        if account is None:
            try:
                os.unlink(socket_path(config["queue_directory"]))
            except FileNotFoundError:
                pass
            return None
        return cls(config, account)

    def start(self, inherited=()) -> None:
        """Fork the service; ``inherited`` are sockets of the master it must not keep."""
        self.started, self.expected_exit = time.monotonic(), False
        pid = os.fork()
        if pid:
            self.pid = pid
            return
        status = 1
        try:
            for sock in inherited:
                sock.close()
            _name_and_tie_to_parent(b"relayd/local")
            status = MailboxService(self.config, self.listener, self.account.pw_uid).serve()
        except BaseException:
            log.exception("local delivery service failed")
        finally:
            os._exit(status)

    def reaped(self, pid: int, status: int) -> bool:
        """The master reaped ``pid``: True when it was this service (restarted later)."""
        if pid != self.pid or not pid:
            return False
        self.pid = 0
        if not self.expected_exit:
            if os.WIFSIGNALED(status):
                log.warning("process relayd/local pid %d killed by signal %d",
                            pid, os.WTERMSIG(status))
            else:
                log.warning("process relayd/local pid %d exit status %d",
                            pid, os.waitstatus_to_exitcode(status))
        self.restart_at = max(time.monotonic(), self.started + RESTART_DELAY)
        return True

    def restart_due(self, inherited=()) -> None:
        if self.restart_at is not None and time.monotonic() >= self.restart_at:
            self.restart_at = None
            self.start(inherited)

    def reload(self, config) -> None:
        """Replace the service with one on ``config`` (its deliveries in progress finish)."""
        self.config = config
        self.stop()

    def stop(self) -> None:
        if self.pid:
            self.expected_exit = True
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _bind(path: str, account) -> socket.socket:
    """The listening socket at ``path``: its directory 0700 and the socket 0600,
    both mail_owner's (Postfix's private/), made before anyone may connect."""
    directory = os.path.dirname(path)
    if os.path.islink(directory):   # mail_owner owns the queue tree: never bind through its link
        os.unlink(directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chown(directory, account.pw_uid, account.pw_gid, follow_symlinks=False)
    os.chmod(directory, 0o700, follow_symlinks=False)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chown(path, account.pw_uid, account.pw_gid)
    sock.listen(128)
    return sock


def _name_and_tie_to_parent(name: bytes) -> None:
    """Name the process (ps, /proc/PID/comm) and have Linux kill it with the master."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:   # the master died before prctl took effect
        os._exit(1)

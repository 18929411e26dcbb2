"""The control channel of a running relayd: a UNIX socket in the queue directory.

``relayd flush`` (like ``postqueue -f``) and the other queue commands talk
to the running process through ``$queue_directory/public/relayd.ctl``, as
Postfix's commands talk to its daemons through ``public/``. One request per
connection: a command line in, one answer line out.

Only root and the user relayd runs as may use it (``queue delete ALL`` is
postsuper's power, which Postfix reserves for the superuser). Postfix leaves
its sockets mode 0666 and guards them with directory modes and setgid
client programs; relayd has no setgid programs, so the socket file itself
is mode 0600 and every connection's peer credentials (SO_PEERCRED) are
checked as well. A request must arrive within ``ipc_timeout`` and fit in
:data:`MAX_REQUEST` bytes; the answer must be taken within ``ipc_timeout``.
"""
from __future__ import annotations

import logging
import os
import socket as stdsocket
import struct
import time

from gevent.server import StreamServer

from relayd.sockets import bind_in_place

log = logging.getLogger("relayd.master")

SOCKET_NAME = os.path.join("public", "relayd.ctl")
MAX_REQUEST = 65536
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
REFUSED = "error permission denied: only root and the mail system owner may use this socket"
TOO_LONG = f"error request longer than {MAX_REQUEST} bytes"


def socket_path(queue_directory: str) -> str:
    return os.path.join(queue_directory, SOCKET_NAME)


class ControlServer:
    """Answers control requests with ``handlers[command](command, args) -> str``."""

    def __init__(self, queue_directory: str, handlers: dict, *, timeout: float):
        self.path = socket_path(queue_directory)
        self.handlers = handlers
        self.timeout = timeout
        self.allowed_uids = {0, os.geteuid()}
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        listener = bind_in_place(self.path, stdsocket.SOCK_STREAM, 0o600)
        listener.listen(16)
        self.server = StreamServer(listener, self._handle)

    def start(self) -> None:
        self.server.start()

    def close(self) -> None:
        self.server.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _handle(self, sock, address) -> None:
        with sock:
            pid, uid, _ = _PEERCRED.unpack(
                sock.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_PEERCRED, _PEERCRED.size))
            if uid not in self.allowed_uids:
                log.warning("%s: refusing control request from uid %d pid %d: "
                            "not root or the mail system owner", self.path, uid, pid)
                return self._answer(sock, REFUSED)
            try:
                line = _read_request(sock, self.timeout)
            except OSError as exc:  # timeout or reset: nothing to answer
                log.warning("%s: control request from uid %d pid %d: %s",
                            self.path, uid, pid, exc or "timeout")
                return
            if line is None:
                return self._answer(sock, TOO_LONG)
            words = line.decode("utf-8", "replace").split()
            if not words or words[0] not in self.handlers:
                return self._answer(sock, "error unknown command")
            try:
                answer = self.handlers[words[0]](words[0], words[1:])
            except Exception as exc:
                log.exception("control command %s failed", words[0])
                answer = f"error {exc}"
            self._answer(sock, answer)

    def _answer(self, sock, answer: str) -> None:
        sock.settimeout(self.timeout)  # gevent's sendall: one deadline for the whole answer
        try:
            sock.sendall(answer.encode() + b"\n")
        except OSError as exc:
            log.warning("%s: cannot send control answer: %s", self.path, exc or "timeout")



def _read_request(sock, timeout: float) -> bytes | None:
    """The request line (without its newline) read within ``timeout`` seconds in
    all; None when it is longer than MAX_REQUEST. Raises OSError (socket.timeout
    included) when it does not arrive in time or the client goes away."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        if len(data) > MAX_REQUEST:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise stdsocket.timeout("timeout exceeded")
        sock.settimeout(left)
        chunk = sock.recv(8192)
        if not chunk:
            raise ConnectionResetError("lost connection before a complete request")
        data += chunk
    line = data[:data.index(b"\n")]
    return line if len(line) <= MAX_REQUEST else None


def request_all(queue_directory: str, command: str, timeout: float = 30.0) -> list[str]:
    """Send ``command`` to every running worker (each has its own queue
    directory: the base one and ``worker-N`` below it); their answers.

    Raises PermissionError when the caller may not use the sockets, OSError
    when no worker answers: relayd is not running.
    """
    directories = [queue_directory] + sorted(
        os.path.join(queue_directory, name) for name in _listdir(queue_directory)
        if name.startswith("worker-"))
    answers = []
    for directory in directories:
        try:
            answer = request(directory, command, timeout)
        except PermissionError:
            raise PermissionError(REFUSED[len("error "):]) from None
        except OSError:
            continue
        if answer == REFUSED:
            raise PermissionError(REFUSED[len("error "):])
        answers.append(answer)
    if not answers:
        raise ConnectionRefusedError(f"no relayd control socket answers in {queue_directory}")
    return answers


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def request(queue_directory: str, command: str, timeout: float = 30.0) -> str:
    """Send one command to the running relayd; raises OSError when it is not running."""
    with stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path(queue_directory))
        try:
            sock.sendall(command.encode() + b"\n")
        except BrokenPipeError:
            pass  # refused before the request was read: the refusal is there to read
        return sock.makefile("rb").readline().decode().strip()

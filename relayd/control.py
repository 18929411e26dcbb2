"""The control channel of a running relayd: a UNIX socket in the queue directory.

``relayd flush`` (like ``postqueue -f``) and the other queue commands talk
to the running process through ``$queue_directory/public/relayd.ctl``, as
Postfix's commands talk to its daemons through ``public/``. One request per
connection: a command line in, one answer line out.
"""
from __future__ import annotations

import logging
import os
import socket as stdsocket

from gevent import socket as gsocket
from gevent.server import StreamServer

log = logging.getLogger("relayd.master")

SOCKET_NAME = os.path.join("public", "relayd.ctl")


def socket_path(queue_directory: str) -> str:
    return os.path.join(queue_directory, SOCKET_NAME)


class ControlServer:
    """Answers control requests with ``handlers[command](command, args) -> str``."""

    def __init__(self, queue_directory: str, handlers: dict):
        self.path = socket_path(queue_directory)
        self.handlers = handlers
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.exists(self.path):
            os.unlink(self.path)
        sock = gsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        sock.bind(self.path)
        os.chmod(self.path, 0o660)
        sock.listen(16)
        self.server = StreamServer(sock, self._handle)

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
            line = sock.makefile("rb").readline(4096).decode("utf-8", "replace").split()
            if not line or line[0] not in self.handlers:
                sock.sendall(b"error unknown command\n")
                return
            try:
                answer = self.handlers[line[0]](line[0], line[1:])
            except Exception as exc:
                log.exception("control command %s failed", line[0])
                answer = f"error {exc}"
            sock.sendall(answer.encode() + b"\n")


def request_all(queue_directory: str, command: str, timeout: float = 30.0) -> list[str]:
    """Send ``command`` to every running worker (each has its own queue
    directory: the base one and ``worker-N`` below it); their answers.

    Raises OSError when no worker answers: relayd is not running.
    """
    directories = [queue_directory] + sorted(
        os.path.join(queue_directory, name) for name in _listdir(queue_directory)
        if name.startswith("worker-"))
    answers = []
    for directory in directories:
        try:
            answers.append(request(directory, command, timeout))
        except OSError:
            continue
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
        sock.sendall(command.encode() + b"\n")
        return sock.makefile("rb").readline().decode().strip()

"""The systemd protocols relayd speaks, written out (no libsystemd binding).

- sd_notify(3): state lines (``READY=1``, ``RELOADING=1``, ``STOPPING=1``,
  ``STATUS=...``, ``WATCHDOG=1``) in one datagram to the AF_UNIX socket named
  by ``$NOTIFY_SOCKET``: a path, or an abstract address written with a
  leading ``@``.
- The watchdog: ``$WATCHDOG_USEC`` (for this process when ``$WATCHDOG_PID``
  is unset or names it) is the interval systemd waits for ``WATCHDOG=1``.
- sd_listen_fds(3): sockets systemd passes open at fd 3 onwards,
  ``$LISTEN_FDS`` of them, for the process ``$LISTEN_PID``, named by
  ``$LISTEN_FDNAMES`` (colon-separated).

Every function is a no-op (or returns nothing) outside systemd, so the daemon
calls them unconditionally.
"""
from __future__ import annotations

import os
import socket
import time

LISTEN_FDS_START = 3


class Notifier:
    """Sends sd_notify datagrams to ``$NOTIFY_SOCKET`` (taken from the environment
    once and removed from it, so the workers and the programs they run cannot
    speak for the service)."""

    def __init__(self, environ=os.environ):
        address = environ.pop("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_usec = _watchdog_usec(environ)
        self._sock = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> None:
        """Send ``lines`` as one state update; a lost datagram is not an error
        (systemd may be restarting), so failures are ignored as sd_notify's callers do."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError:
            pass

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        """RELOADING=1 with the CLOCK_MONOTONIC time systemd (Type=notify-reload) checks."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping: draining sessions")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_usec(environ) -> int:
    """``$WATCHDOG_USEC`` when it is meant for this process (sd_watchdog_enabled), else 0."""
    usec = environ.pop("WATCHDOG_USEC", "")
    pid = environ.pop("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return 0
    try:
        return max(0, int(usec))
    except ValueError:
        return 0


def listen_fds(environ=os.environ) -> list[tuple[int, str]]:
    """The sockets systemd passed this process, as (fd, name), with the LISTEN_*
    variables removed (sd_listen_fds(3) with unset_environment) and each fd
    marked close-on-exec. Empty when none were passed or they are meant for
    another process."""
    pid = environ.pop("LISTEN_PID", "")
    count = environ.pop("LISTEN_FDS", "")
    names = environ.pop("LISTEN_FDNAMES", "")
    if not pid or pid != str(os.getpid()):
        return []
    try:
        n = int(count)
    except ValueError:
        return []
    names_list = names.split(":") if names else []
    out = []
    for i in range(n):
        fd = LISTEN_FDS_START + i
        os.set_inheritable(fd, False)
        out.append((fd, names_list[i] if i < len(names_list) else "unknown"))
    return out


def activated_sockets(environ=os.environ) -> dict[tuple[str, int], socket.socket]:
    """The listening TCP sockets systemd passed, by the (host, port) each is bound to.
    Anything else passed (a datagram or UNIX socket) is closed: relayd has no use for it."""
    out = {}
    for fd, _ in listen_fds(environ):
        sock = socket.socket(fileno=fd)
        if sock.family not in (socket.AF_INET, socket.AF_INET6) \
                or sock.type != socket.SOCK_STREAM:
            sock.close()
            continue
        sock.setblocking(False)
        out[sock.getsockname()[:2]] = sock
    return out

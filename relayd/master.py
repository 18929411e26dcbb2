"""The relayd master process: binds, forks, supervises, reloads, stops.

As Postfix's master(8) it binds every listener once (or takes them from
systemd), then keeps ``relayd_worker_processes`` workers running, each a
whole relay on the shared sockets with its own queue journal:

- A worker that dies is restarted on its own queue (what it acknowledged is
  in its journal), at most once a second per worker; one that dies before it
  ever served is a bad start and is retried only after
  ``service_throttle_time``, so a crash loop never spins. Both are logged as
  master(8) logs them.
- SIGHUP reloads: the new main.cf, master.cf and tables are checked first
  (a bad one is refused, logged, and the running configuration kept), then
  the workers are replaced one at a time: the old worker stops accepting,
  finishes its sessions (up to ``relayd_drain_timeout``), stops delivery and
  closes its queue; only then does the new worker of that number start and
  take the queue over, so no queue ever has two owners. With one worker,
  new connections wait in the listen queue meanwhile (none is refused).
- SIGTERM/SIGINT drain: every worker stops accepting and finishes its
  sessions; the master waits for them, SIGKILLs what is left after the
  deadline (the journals stay consistent: anything acknowledged is on disk).
- systemd: READY / RELOADING / STOPPING / STATUS, and WATCHDOG=1 only while
  every worker's event loop beats (:class:`Heartbeats`).
- Started as root, one more child: the privileged local delivery process
  (relayd.delivery.mailbox_service), restarted when it dies, replaced on
  SIGHUP, stopped with the workers.

The master runs no event loop: it sleeps in ``select`` on a signal wake-up
pipe with a short timeout.
"""
from __future__ import annotations

import logging
import mmap
import os
import select
import signal
import struct
import time
from dataclasses import dataclass, field

from relayd import chroot, privileges
from relayd.anvil import Anvil
from relayd.config import ConfigError
from relayd.delivery.mailbox_service import MailboxSupervisor
from relayd.edge.listener import bind_all
from relayd.metrics.endpoint import metrics_address
from relayd.relay import Relay, check_socket_paths
from relayd.sockets import drain
from relayd.systemd import Notifier, activated_sockets
from relayd.tls.context import prepare_server_tls

log = logging.getLogger("relayd.master")

RESTART_DELAY = 1.0      # at most one restart a second per worker
HEARTBEAT_INTERVAL = 0.5  # how often a worker's loop beats
STALE_AFTER = 3.0        # a loop that has not beaten for this long is unhealthy
STARTUP_GRACE = 60.0     # a worker still opening (recovering) its queue counts as healthy this long
TICK = 0.25              # the master's sleep between checks
_WILDCARDS = ("0.0.0.0", "::")


class Heartbeats:
    """One slot per worker in memory shared across the fork: the CLOCK_MONOTONIC
    time the worker's event loop last ran its heartbeat timer, and its queue size.
    A timer every HEARTBEAT_INTERVAL, nothing per message."""

    _SLOT = struct.Struct("dq")

    def __init__(self, workers: int):
        size = max(1, workers) * self._SLOT.size
        self._map = mmap.mmap(-1, size)

    def beat(self, worker: int, queue_size: int) -> None:
        self._SLOT.pack_into(self._map, worker * self._SLOT.size, time.monotonic(), queue_size)

    def read(self, worker: int) -> tuple[float, int]:
        """(last beat, queue size) of ``worker``."""
        return self._SLOT.unpack_from(self._map, worker * self._SLOT.size)


@dataclass(eq=False)
class Child:
    number: int
    pid: int
    config: object
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    retiring: bool = False


class Master:
    """Binds the listeners, forks the workers, and keeps them running.

    ``spawn(number, config, listen, sockets, anvil, heartbeats)`` runs a worker in the
    forked child (it never returns); ``loader()`` reads the configuration
    again for SIGHUP.
    """

    def __init__(self, config, listen, workers: int, *, spawn, loader=None):
        self.config = config
        self.listen = listen
        self.workers = workers
        self.spawn_worker = spawn
        self.loader = loader
        self.addresses = check(config, listen, workers)
        self.sockets: dict = {}
        self.children: dict[int, Child] = {}
        self.restart_at: dict[int, float] = {}
        self.signals: list[int] = []
        self.stopping = False
        self.kill_deadline = 0.0
        self.reloading = False
        self.announced_ready = False
        self.notifier = Notifier()
        self._last_ping = 0.0
        self._last_status = ""
        self.mailbox: MailboxSupervisor | None = None   # local(8) as the recipient: started as root

    # -- the loop ----------------------------------------------------------------------
    def supervise(self) -> int:
        """Bind, fork, and supervise until stopped; the exit status."""
        self.sockets = take_sockets(self.addresses, activated_sockets())
        self.anvil = Anvil(self.workers, capacity=self.config["smtpd_session_limit"])
        self.heartbeats = Heartbeats(self.workers)
        wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)
        self.mailbox = MailboxSupervisor.for_config(self.config)
        if self.mailbox:
            self.mailbox.start(self.sockets.values())
        log.info("starting %d worker processes", self.workers)
        for number in range(self.workers):
            self._spawn(number)
        while self.children or not self.stopping:
            select.select([wakeup_r], [], [], TICK)
            drain(wakeup_r)
            self._handle_signals()
            self._reap()
            if self.stopping:
                self._kill_stragglers()
                continue
            self._restart_due()
            if self.mailbox:
                self.mailbox.restart_due(self.sockets.values())
            self._check_ready()
            self._roll()
            self._report()
        self.notifier.close()
        return 0

    def _on_signal(self, signum, frame) -> None:
        self.signals.append(signum)

    def _handle_signals(self) -> None:
        signals, self.signals = self.signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT) and not self.stopping:
                self._stop(signum)
            elif signum == signal.SIGHUP and not self.stopping:
                self._reload()

    # -- children ----------------------------------------------------------------------
    def _spawn(self, number: int) -> None:
        config = self.config
        pid = os.fork()
        if pid == 0:
            if self.mailbox:   # the privileged process's requests are not a worker's to take
                self.mailbox.listener.close()
            self.spawn_worker(number, config, self.listen, self.sockets, self.anvil,
                              self.heartbeats)
            os._exit(1)  # spawn_worker exits itself; this is a safety net
        self.children[pid] = Child(number, pid, config)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.mailbox and self.mailbox.reaped(pid, status):
                continue
            child = self.children.pop(pid, None)
            if child is not None:
                self._exited(child, status)

    def _exited(self, child: Child, status: int) -> None:
        self.anvil.reset_worker(child.number)  # its sessions died with it
        if self.stopping:
            return
        if child.retiring:  # drained for a reload: its successor takes the queue now
            self._spawn(child.number)
            return
        if os.WIFSIGNALED(status):
            log.warning("process relayd/worker pid %d killed by signal %d",
                        child.pid, os.WTERMSIG(status))
        elif os.waitstatus_to_exitcode(status):
            log.warning("process relayd/worker pid %d exit status %d",
                        child.pid, os.waitstatus_to_exitcode(status))
        now = time.monotonic()
        if child.ready or self._beaten(child):  # it may have served since the last look
            self.restart_at[child.number] = max(now, child.started + RESTART_DELAY)
        else:
            log.warning("relayd/worker: bad command startup -- throttling")
            self.restart_at[child.number] = now + self.config["service_throttle_time"]

    def _restart_due(self) -> None:
        now = time.monotonic()
        for number, when in list(self.restart_at.items()):
            if when <= now:
                del self.restart_at[number]
                self._spawn(number)

    def _beaten(self, child: Child) -> bool:
        """Its event loop has beaten since it was forked: it serves."""
        return self.heartbeats.read(child.number)[0] >= child.started

    def _check_ready(self) -> None:
        for child in self.children.values():
            if not child.ready and self._beaten(child):
                child.ready = True
        if not self.announced_ready and self._all_ready():
            self.announced_ready = True
            self.notifier.ready(self.status_line())

    def _all_ready(self) -> bool:
        live = {c.number for c in self.children.values() if c.ready and not c.retiring}
        return len(live) == self.workers

    # -- reload ------------------------------------------------------------------------
    def _reload(self) -> None:
        """SIGHUP: check the new configuration, then replace the workers one by one."""
        self.notifier.reloading()
        from relayd import __version__
        log.info("reload -- version %s, configuration %s", __version__,
                 self.config.config_directory or "(built-in)")
        try:
            if self.loader is None:
                raise RuntimeError("this relayd was not started from a configuration directory")
            config = self.loader()
            addresses = check(config, self.listen, self.workers)
            sockets = take_sockets(addresses, {}, self.sockets)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the running configuration
            log.error("reload refused: %s; keeping the running configuration", exc)
            self.notifier.ready(self.status_line())
            return
        workers = config["relayd_worker_processes"]
        if workers != self.config["relayd_worker_processes"]:
            log.warning("relayd_worker_processes: a new value takes effect at the next start")
        for address, sock in self.sockets.items():
            if address not in sockets:
                sock.close()  # the old workers keep their own copies while they drain
        self.config, self.sockets, self.addresses = config, sockets, addresses
        if self.mailbox:
            self.mailbox.reload(config)
        self.reloading = True

    def _roll(self) -> None:
        """Retire one worker of an older configuration at a time, once every
        worker of the new one is serving."""
        children = list(self.children.values())
        if any(c.retiring or not c.ready for c in children) or self.restart_at:
            return
        for child in children:
            if child.config is not self.config:
                child.retiring = True
                _kill(child.pid, signal.SIGTERM)
                return
        if self.reloading:
            self.reloading = False
            self.notifier.ready(self.status_line())

    # -- stop --------------------------------------------------------------------------
    def _stop(self, signum: int) -> None:
        self.stopping = True
        self.notifier.stopping()
        log.info("terminating on signal %d", signum)
        # Relay.stop: sessions, then deliveries in progress, each up to the timeout.
        self.kill_deadline = time.monotonic() + 2 * self.config["relayd_drain_timeout"] + 5
        for child in self.children.values():
            _kill(child.pid, signal.SIGTERM)
        if self.mailbox:
            self.mailbox.stop()
        for sock in self.sockets.values():
            sock.close()

    def _kill_stragglers(self) -> None:
        if self.children and time.monotonic() > self.kill_deadline:
            for child in self.children.values():
                log.warning("process relayd/worker pid %d: still running after the drain "
                            "timeout; killing it", child.pid)
                _kill(child.pid, signal.SIGKILL)
            self.kill_deadline = float("inf")

    # -- systemd -----------------------------------------------------------------------
    def healthy(self) -> bool:
        """Every worker number has a live worker whose loop beats (or that is
        still starting: recovering a large queue takes a while)."""
        now = time.monotonic()
        serving = set()
        for child in self.children.values():
            beat = self.heartbeats.read(child.number)[0]
            if (child.ready and now - beat < STALE_AFTER) or \
                    (not child.ready and now - child.started < STARTUP_GRACE):
                serving.add(child.number)
        return len(serving) == self.workers

    def status_line(self) -> str:
        queued = sum(self.heartbeats.read(n)[1] for n in range(self.workers))
        return (f"{len(self.children)} workers, {self.anvil.sessions()} sessions, "
                f"{queued} messages queued")

    def _report(self) -> None:
        now = time.monotonic()
        interval = self.notifier.watchdog_usec / 2e6
        if interval and now - self._last_ping >= interval and self.healthy():
            self._last_ping = now
            self.notifier.watchdog()
        if self.announced_ready and not self.reloading:
            status = self.status_line()
            if status != self._last_status:
                self._last_status = status
                self.notifier.status(status)


def check(config, listen=None, workers: int = 1) -> list[tuple[str, int]]:
    """The listening addresses of ``config`` (or ``listen``'s); raises (ConfigError...)
    when a restriction list, a table, a TLS setting or the queue directory (for
    ``workers``' sockets) is bad, before anything changes. What the master checks
    at start and reload, and what ``relayd config check`` runs."""
    privileges.mail_owner(config)   # started as root: the workers' account must exist
    check_socket_paths(config["queue_directory"], workers)
    chroot.jail_directory(config, warn=True)   # says why a chroot asked for is not applied
    services = Relay(config, listen=listen).service_addresses()
    # The TLS contexts are built here, before the fork: the workers share them.
    prepare_server_tls(svc_config for _, svc_config, _ in services)
    addresses = [address for address, _, _ in services]
    metrics = metrics_address(config)
    if metrics in addresses:
        raise ConfigError(f"parameter relayd_metrics_listen: [{metrics[0]}]:{metrics[1]} "
                          f"is also an SMTP service's address")
    return addresses + ([metrics] if metrics else [])


def take_sockets(addresses, activated: dict, bound: dict | None = None) -> dict:
    """A listening socket for each address: the one systemd passed for it, one
    already ``bound``, a passed wildcard one (``0.0.0.0`` or ``::``) on the same
    port (serving the first such address only), else a new one. A passed socket
    that no service uses is closed with a warning."""
    bound = bound or {}
    out = {a: activated[a] for a in addresses if a in activated}
    taken, unbound = set(out), []
    for address in addresses:
        if address in out:
            continue
        if address in bound:
            out[address] = bound[address]
            continue
        wildcard = next((a for a in activated if a[0] in _WILDCARDS and a[1] == address[1]), None)
        if wildcard is None:
            unbound.append(address)
        elif wildcard not in taken:
            out[address] = activated[wildcard]
            taken.add(wildcard)
    for address, sock in activated.items():
        if address not in taken:
            log.warning("socket [%s]:%d passed by systemd matches no master.cf service; "
                        "closing it", *address)
            sock.close()
    out.update(bind_all(unbound))
    return out


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass

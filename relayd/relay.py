"""The whole relay as greenlets: listeners, queue store, queue manager.

:class:`Relay` is the embedding API (re-exported as ``relayd.Relay``) and the
``relayd`` command is a thin layer over it. It has no process-wide side
effects: no logging set-up, no signal handlers, no monkey-patching.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re

from gevent.event import Event

from relayd.anvil import Anvil
from relayd.config import ConfigError, load_config
from relayd.control import ControlServer, socket_path
from relayd.delivery.qmgr import QueueManager
from relayd.domains import Interfaces
from relayd.edge.deadlines import DeadlineSweeper
from relayd.edge.listener import Listener, SmtpdService, bind_all
from relayd.metrics import METER
from relayd.metrics.gauges import RelayGauges
from relayd.pickup import Pickup, bound_socket_path
from relayd.pipeline.registry import CheckRegistry
from relayd.pipeline.restrictions import Restrictions
from relayd.queue.lock import QueueLocked
from relayd.queue.qid import QueueIdGenerator
from relayd.queue.operations import apply_queue_op, make_due, parse_selection
from relayd.queue.showq import showq_record
from relayd.queue.store import QueueStore
from relayd.sockets import staging_path

log = logging.getLogger("relayd.master")

# sockaddr_un's sun_path: 108 bytes on Linux, which a path may fill without a NUL.
SUN_PATH_MAX = 108


class Relay:
    """An SMTP relay running inside the calling gevent program.

    Build it from a :class:`relayd.config.Config`, or from what
    :func:`relayd.config.load_config` takes: ``config_directory`` (reads
    main.cf and master.cf there), ``main_cf`` / ``master_cf`` (their text)
    and main.cf parameters as keywords (``relayhost="[127.0.0.1]:2526"``).
    ``listen`` replaces master.cf's smtpd services with the given
    ``(host, port)`` addresses (port 0 picks a free one; see
    :attr:`addresses`).

    ``worker`` / ``workers``, ``sockets`` and ``anvil`` are for the
    ``relayd`` daemon, which runs one Relay per worker process on listening
    sockets it bound before forking: worker N keeps its queue in ``$queue_directory/worker-N``
    (worker 0 in ``$queue_directory`` itself) and also delivers what is left
    in the queues of workers that no longer exist.
    """

    def __init__(self, config=None, *, config_directory: str | None = None,
                 main_cf: str | None = None, master_cf: str | None = None,
                 listen: list[tuple[str, int]] | None = None, worker: int = 0,
                 workers: int = 1, sockets: dict | None = None,
                 anvil: Anvil | None = None, **params):
        if config is None:
            config = load_config(config_directory, main_cf=main_cf, master_cf=master_cf,
                                 **params)
        elif params:
            config = config.with_overrides(params)
        self.config = config
        self._listen = listen
        self._sockets = sockets or {}
        self.anvil = anvil or Anvil(capacity=config["smtpd_session_limit"])
        self.registry = CheckRegistry.from_entry_points()
        self.queue_directory = worker_queue_directory(config["queue_directory"], worker)
        queue_ids = QueueIdGenerator(stripe=worker)
        fsync = config["relayd_queue_fsync"]
        self.stores = [QueueStore(directory, fsync=fsync, queue_ids=queue_ids,
                                  min_free=config["queue_minfree"],
                                  message_size_limit=config["message_size_limit"])
                       for directory in [self.queue_directory]
                       + adopted_queue_directories(config["queue_directory"], worker, workers)]
        self.store = self.stores[0]
        qmgr_config = _share_delivery_limits(config, workers)
        self.qmgrs = [QueueManager(store, qmgr_config, hooks=self.registry, workers=workers,
                                   anvil=self.anvil) for store in self.stores]
        self.qmgr = self.qmgrs[0]
        self.sweeper: DeadlineSweeper | None = None
        self.listeners: list[Listener] = []
        self.control: ControlServer | None = None
        # Worker 0 drains the shared maildrop (sendmail's mail): one reader, no claiming races.
        self.pickup: Pickup | None = None
        self._runs_pickup = worker == 0
        self._stopped = Event()
        self._started = False
        self._gauges = None
        # Compile every service's restrictions now: a bad list must stop startup.
        self._services = [(address, svc_config, Restrictions(svc_config, self.registry), name)
                          for address, svc_config, name in self.service_addresses()]
        self._enable_hooks(config)

    def _enable_hooks(self, config) -> None:
        """An installed plugin stays inert unless configured: its lifecycle hooks run
        only when a restriction list names one of its checks, or relayd_plugins names it."""
        named = set(config["relayd_plugins"])
        enabled = {label for label, name in self.registry.plugin_names.items()
                   if name in named or label in named}
        for _, _, restrictions, _ in self._services:
            enabled |= restrictions.plugins_used()
        self.registry.retain_hooks(enabled)

    def service_addresses(self) -> list[tuple[tuple[str, int], object, str]]:
        """(address, service configuration, service name) of every listener."""
        if self._listen is not None:
            return [(tuple(a), self.config, "smtp") for a in self._listen]
        # master(8) binds: $inet_interfaces is main.cf's, not a service's -o.
        interfaces = Interfaces(self.config).listen_addresses(self.config["inet_protocols"])
        out = []
        for service, svc_config in self.config.smtpd_listeners():
            host, port = service.listen
            hosts = [host] if host else interfaces
            out.extend(((h, port), svc_config, service.name) for h in hosts)
        return out

    def configurations(self) -> list:
        """The configuration objects this relay's parts look settings up in (its own,
        each service's): what parts built on first use per configuration are keyed by."""
        return [self.config, *(svc_config for _, svc_config, _, _ in self._services)]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) each listener is bound to."""
        return [listener.address for listener in self.listeners]

    def start(self) -> None:
        """Open the queues, start delivery, bind and start the listeners.

        Raises :class:`relayd.queue.lock.QueueLocked` when another process
        (another relayd) owns this queue directory."""
        if self._started:
            return
        self._started = True
        self._open_queues()
        if self._runs_pickup:   # the maildrop exists before the first 220
            self.pickup = Pickup(self.config, self.store, self.queue_directory)
            self.pickup.start()
        self.sweeper = DeadlineSweeper()
        sockets = self._sockets or bind_all([address for address, *_ in self._services])
        for address, svc_config, restrictions, name in self._services:
            if address not in sockets:
                continue
            service = SmtpdService(svc_config, store=self.store, restrictions=restrictions,
                                   sweeper=self.sweeper, name=name,
                                   anvil=self.anvil, hooks=self.registry)
            listener = Listener(sockets[address], service)
            listener.start()
            self.listeners.append(listener)
            log.info("daemon started -- version %s, listening on %s:%d",
                     _version(), *listener.address)
        self.control = ControlServer(self.queue_directory, {
            "flush": self._flush, "list": self._list, "hold": self._queue_op,
            "release": self._queue_op, "delete": self._queue_op, "requeue": self._queue_op,
            "status": self._status},
            timeout=self.config["ipc_timeout"])
        self.control.start()
        self._gauges = RelayGauges(self)
        METER.add_source(self._gauges)

    def _open_queues(self) -> None:
        """Open (lock, recover) this relay's queue, then the orphaned queues it adopts,
        before anything is bound. Another process holding our own queue stops the
        start (QueueLocked); an orphaned queue someone else holds is left to them."""
        self.store.open()
        opened = [(self.store, self.qmgr)]
        for store, qmgr in zip(self.stores[1:], self.qmgrs[1:]):
            try:
                store.open()
            except QueueLocked as exc:
                log.warning("queue %s not adopted: locked by %s", store.directory,
                            f"process {exc.pid}" if exc.pid else "another process")
                continue
            opened.append((store, qmgr))
        self.stores = [store for store, _ in opened]
        self.qmgrs = [qmgr for _, qmgr in opened]
        for store, qmgr in opened:
            store.on_commit = qmgr.wake
            qmgr.start()

    def _flush(self, command: str, args) -> str:
        """postqueue -f (no args), -s SITE (``site=SITE``: deferred mail with a
        recipient there) or -i ID... (those deferred messages): due now."""
        for store, qmgr in zip(self.stores, self.qmgrs):
            if not args:
                qmgr.flush()
            elif make_due(store, args):
                qmgr.wake()
        return "ok"

    def _list(self, command: str, args) -> str:
        """Every queued message of this worker as showq records, one line of JSON (for mailq)."""
        records = (showq_record(m) for store in self.stores for m in store.messages())
        return json.dumps([r for r in records if r is not None])

    def queue_size(self) -> int:
        """Messages in this relay's queues (its own and the ones it adopted)."""
        return sum(store.count() for store in self.stores)

    def _status(self, command: str, args) -> str:
        """This worker's pid, open sessions and queue, as one line of JSON (relayd status)."""
        states = {}
        for store in self.stores:
            for message in store.messages():
                states[message.state] = states.get(message.state, 0) + 1
        return json.dumps({"pid": os.getpid(), "queue_directory": self.queue_directory,
                           "sessions": sum(len(l.service.sessions) for l in self.listeners),
                           "queue": states})

    def _queue_op(self, command: str, args) -> str:
        """hold/release/delete/requeue by queue id (ALL: every message), limited to
        the queues a ``queues=NAME,...`` word names; the ids changed."""
        changed = apply_queue_op(self.stores, command, *parse_selection(args))
        if command in ("release", "requeue") and changed:
            for qmgr in self.qmgrs:
                qmgr.wake()
        return " ".join(changed)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let sessions finish for up to ``timeout`` seconds,
        then stop delivery and close the queues. Nothing acknowledged is lost."""
        METER.remove_source(self._gauges)
        for listener in self.listeners:
            listener.close()
        for listener in self.listeners:
            listener.drain(timeout)
        if self.control is not None:
            self.control.close()
        if self.pickup is not None:
            self.pickup.stop()
        for qmgr in self.qmgrs:
            qmgr.stop(timeout)
        if self.sweeper is not None:
            self.sweeper.stop()
        for store in self.stores:
            store.close()
        self.listeners = []
        self._stopped.set()

    def serve_forever(self) -> None:
        """Start (unless started), then block the calling greenlet until :meth:`stop`."""
        self.start()
        self._stopped.wait()

    def __enter__(self) -> "Relay":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


WORKER_DIRECTORY = re.compile(r"worker-(\d+)$")


def worker_queue_directory(base: str, worker: int) -> str:
    """Where worker ``worker`` keeps its queue."""
    return base if worker == 0 else os.path.join(base, f"worker-{worker}")


def adopted_queue_directories(base: str, worker: int, workers: int) -> list[str]:
    """Queues of workers beyond ``workers`` (left by a larger worker count) that
    ``worker`` delivers: each orphan goes to exactly one live worker."""
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    out = []
    for name in sorted(names):
        m = WORKER_DIRECTORY.match(name)
        if m and int(m.group(1)) >= workers and int(m.group(1)) % workers == worker:
            out.append(os.path.join(base, name))
    return out


def check_socket_paths(queue_directory: str, workers: int) -> None:
    """ConfigError when a UNIX socket the workers bind under ``queue_directory`` (each
    worker's control socket, pickup's wake-up socket) has a path too long for a
    socket address: a worker would fail to start, again and again."""
    paths = [socket_path(worker_queue_directory(queue_directory, n)) for n in range(workers)]
    longest = max([*paths, *map(staging_path, paths), bound_socket_path(queue_directory)],
                  key=len)   # each is bound in a staging directory first
    if len(longest.encode()) > SUN_PATH_MAX:
        raise ConfigError(f"{queue_directory}: too long for the UNIX sockets under it "
                          f"({longest} is {len(longest.encode())} bytes, at most "
                          f"{SUN_PATH_MAX} fit a socket address): use a shorter path",
                          parameter="queue_directory")


def _share_delivery_limits(config, workers: int):
    """The delivery limits one worker's pool gets: master.cf's smtp maxproc (else
    default_process_limit) divided among ``workers`` pools. The per-destination
    limits are divided by the queue manager (relayd.delivery.limits)."""
    return config.with_overrides({
        "default_process_limit": max(1, math.ceil(config.delivery_concurrency() / workers)),
    })


def _version() -> str:
    from relayd import __version__
    return __version__


__all__ = ["Relay"]

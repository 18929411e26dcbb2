"""The relayd daemon: a master process and its worker processes.

The master binds every listener once, then forks ``relayd_worker_processes``
workers. Each worker is a whole :class:`~relayd.relay.Relay` (sessions, its
own queue journal, its own delivery) serving the shared listening sockets,
so relayd uses every core while each message stays in the process that
accepted it. The master restarts a worker that dies, passes SIGTERM/SIGINT
on for a graceful stop, and a worker dies with its master (PR_SET_PDEATHSIG)
so that a killed master never leaves workers holding the ports.

With one worker no process is forked: the relay runs in the ``relayd``
process itself.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
import time

import gevent

from relayd import maillog
from relayd.anvil import Anvil
from relayd.edge.listener import bind_all
from relayd.queue.lock import MASTER_LOCK, DirectoryLock, QueueLocked
from relayd.relay import Relay
from relayd.tls.context import prepare_server_tls

log = logging.getLogger("relayd.master")

STOP_TIMEOUT = 10.0
RESTART_DELAY = 1.0
_PR_SET_PDEATHSIG = 1


def worker_count(config) -> int:
    """relayd_worker_processes, with ``auto`` meaning one per CPU core."""
    value = config["relayd_worker_processes"]
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, value)


def run(config, listen=None) -> int:
    """Run relayd in the foreground until SIGTERM or SIGINT; the exit status
    (1 when another relayd already runs on this queue_directory)."""
    workers = worker_count(config)
    if workers > 1:
        return Master(config, listen, workers).run()
    handler = maillog.configure(config["myhostname"], config["maillog_file"])
    try:
        with instance_lock(config):
            _serve(Relay(config, listen=listen))
    except QueueLocked as exc:
        return _fatal(config, exc)
    finally:
        handler.flush()
    return 0


@contextlib.contextmanager
def instance_lock(config):
    """Hold ``$queue_directory/master.lock`` for the life of this relayd: taken
    before any queue is recovered or any port bound, QueueLocked if held."""
    lock = DirectoryLock(config["queue_directory"], MASTER_LOCK)
    os.makedirs(lock.directory, mode=0o700, exist_ok=True)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def _fatal(config, exc: QueueLocked) -> int:
    """Postfix's "fatal: the Postfix mail system is already running", in the log and on stderr."""
    log.critical("%s", exc)
    if config["maillog_file"] not in ("", "/dev/stderr", "-"):
        print(f"relayd: fatal: {exc}", file=sys.stderr)
    return 1


def _serve(relay: Relay) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully."""
    stopping = []

    def stop():
        if not stopping:
            stopping.append(gevent.spawn(relay.stop, STOP_TIMEOUT))

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    _freeze_startup_objects()
    relay.serve_forever()


def _freeze_startup_objects() -> None:
    """Leave what startup built (modules, the configuration, tables, TLS
    contexts) out of every later garbage collection: they live as long as the
    process, and the full collections would otherwise walk all of them. In the
    master before the fork this also keeps the workers from writing to (and so
    copying) the pages they share with it."""
    gc.collect()
    gc.freeze()


class Master:
    """Binds the listeners, forks the workers, and keeps them running."""

    def __init__(self, config, listen, workers: int):
        self.config = config
        self.listen = listen
        self.workers = workers
        # Built here so that a bad restriction list stops startup in the master.
        services = Relay(config, listen=listen).service_addresses()
        self.addresses = [a for a, _, _ in services]
        # ... and the TLS contexts, which the workers share (session tickets).
        prepare_server_tls(svc_config for _, svc_config, _ in services)
        self.sockets: dict = {}
        self.children: dict[int, int] = {}   # pid -> worker number
        self.stopping = False

    def run(self) -> int:
        self.handler = maillog.configure(self.config["myhostname"], self.config["maillog_file"],
                                         batching=False)
        try:
            with instance_lock(self.config):
                return self._supervise()
        except QueueLocked as exc:
            return _fatal(self.config, exc)

    def _supervise(self) -> int:
        self.sockets = bind_all(self.addresses)
        self.anvil = Anvil(self.workers, capacity=self.config["smtpd_session_limit"])
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        log.info("starting %d worker processes", self.workers)
        _freeze_startup_objects()
        for worker in range(self.workers):
            self._spawn(worker)
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            worker = self.children.pop(pid, None)
            if worker is None:
                continue
            self.anvil.reset_worker(worker)  # its sessions died with it
            if self.stopping:
                continue
            log.warning("process relayd/worker pid %d exit status %d", pid,
                        os.waitstatus_to_exitcode(status))
            time.sleep(RESTART_DELAY)
            if not self.stopping:
                self._spawn(worker)
        return 0

    def _on_stop(self, signum, frame) -> None:
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _spawn(self, worker: int) -> None:
        pid = os.fork()
        if pid:
            self.children[pid] = worker
            return
        status = 0
        try:
            self._worker_main(worker)
        except QueueLocked as exc:   # e.g. an embedded Relay on this worker's queue
            log.critical("worker %d: %s", worker, exc)
            status = 1
        except BaseException:
            log.exception("worker %d failed", worker)
            status = 1
        finally:
            os._exit(status)

    def _worker_main(self, worker: int) -> None:
        _die_with_parent()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        gevent.reinit()
        logging.getLogger("relayd").removeHandler(self.handler)
        handler = maillog.configure(self.config["myhostname"], self.config["maillog_file"])
        self.anvil.use_worker(worker)
        try:
            _serve(Relay(self.config, listen=self.listen, worker=worker, workers=self.workers,
                         sockets=self.sockets, anvil=self.anvil))
        finally:
            handler.flush()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the master dies, however it dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the master died before prctl took effect
        os._exit(1)

"""The relayd daemon: a master process and its worker processes.

The master (:mod:`relayd.master`) binds every listener once, then forks
``relayd_worker_processes`` workers. Each worker is a whole
:class:`~relayd.relay.Relay` (sessions, its own queue journal, its own
delivery) serving the shared listening sockets, so relayd uses every core
while each message stays in the process that accepted it. This module is
the worker side: privileges, signals, the heartbeat; a worker dies with its
master (PR_SET_PDEATHSIG) so that a killed master never leaves workers
holding the ports.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import gc
import logging
import os
import signal
import sys

import gevent

from relayd import chroot, maillog, privileges
from relayd.master import HEARTBEAT_INTERVAL, Master
from relayd.metrics.endpoint import WorkerMetrics, metrics_address
from relayd.queue.lock import MASTER_LOCK, DirectoryLock, QueueLocked
from relayd.relay import Relay

log = logging.getLogger("relayd.master")

_PR_SET_PDEATHSIG = 1


def worker_count(config) -> int:
    """relayd_worker_processes, with ``auto`` meaning one per CPU core."""
    value = config["relayd_worker_processes"]
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, value)


def run(config, listen=None, loader=None) -> int:
    """Run relayd in the foreground until SIGTERM or SIGINT; the exit status
    (1 when another relayd already runs on this queue_directory).
    ``loader()`` reads the configuration again on SIGHUP."""
    handler = configure_logging(config, batching=False)

    def spawn(number, worker_config, listen, sockets, anvil, heartbeats):
        _spawn_worker(number, worker_config, listen, sockets, anvil, heartbeats, handler)

    try:
        master = Master(config, listen, worker_count(config), spawn=spawn, loader=loader)
        with instance_lock(config):
            privileges.prepare_queue(config)
            _freeze_startup_objects()
            return master.supervise()
    except QueueLocked as exc:
        return _fatal(handler, exc)
    finally:
        handler.flush()


def configure_logging(config, batching: bool = True):
    """relayd's log destination (maillog_file, the journal, syslog) as configured."""
    return maillog.configure(config["myhostname"], config["maillog_file"], batching=batching,
                             syslog_name=config["syslog_name"],
                             syslog_facility=config["syslog_facility"])


@contextlib.contextmanager
def instance_lock(config):
    """Hold ``$queue_directory/master.lock`` for the life of this relayd: taken
    before any queue is recovered or any port bound, QueueLocked if held."""
    lock = DirectoryLock(config["queue_directory"], MASTER_LOCK)
    os.makedirs(lock.directory, mode=0o700, exist_ok=True)
    lock.acquire()
    os.chmod(lock.path, 0o644)  # the pid is no secret: relayd status as mail_owner reads it
    try:
        yield lock
    finally:
        lock.release()


def master_pid(queue_directory: str) -> int | None:
    """The pid of the relayd master running on ``queue_directory``, None when none
    runs. The pid is read from ``master.lock`` and believed only while that
    file's lock is held (so a stale or forged file names nobody)."""
    try:
        fd = os.open(os.path.join(queue_directory, MASTER_LOCK), os.O_RDONLY | os.O_CLOEXEC
                     | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        return None  # nobody holds it: no master runs
    finally:
        os.close(fd)


def _fatal(handler, exc: QueueLocked) -> int:
    """Postfix's "fatal: the Postfix mail system is already running", in the log
    and, when the log goes elsewhere, on stderr."""
    log.critical("%s", exc)
    if getattr(handler, "fd", -1) != sys.stderr.fileno():
        print(f"relayd: fatal: {exc}", file=sys.stderr)
    return 1


def _serve(relay: Relay) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully: stop accepting, let
    sessions finish for up to relayd_drain_timeout, stop delivery."""
    stopping = []

    def stop():
        if not stopping:
            stopping.append(gevent.spawn(relay.stop, relay.config["relayd_drain_timeout"]))

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    # SIGHUP is the master's (reload): a hangup of the process group must not kill a worker.
    gevent.signal_handler(signal.SIGHUP, lambda: None)
    # gevent records ten frames of the spawning stack for every greenlet, a
    # debugging aid (track_greenlet_tree) that cost 3 % of a message's CPU: a
    # greenlet per connection and per delivery. The daemon owns its process; an
    # embedding program decides for itself (docs/embedding.md).
    gevent.config.track_greenlet_tree = False
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


def _spawn_worker(number: int, config, listen, sockets, anvil, heartbeats, handler) -> None:
    """The forked worker ``number``: serve until stopped, then exit (never returns)."""
    status = 0
    try:
        _worker_main(number, config, listen, sockets, anvil, heartbeats, handler)
    except QueueLocked as exc:   # e.g. an embedded Relay on this worker's queue
        log.critical("worker %d: %s", number, exc)
        status = 1
    except BaseException:
        log.exception("worker %d failed", number)
        status = 1
    finally:
        # After the lines above: the worker's handler batches until its loop turns,
        # and os._exit runs no handler's flush (a failed start would die unexplained).
        for worker_handler in logging.getLogger("relayd").handlers:
            worker_handler.flush()
        os._exit(status)


def _worker_main(number: int, config, listen, sockets, anvil, heartbeats,
                 master_handler) -> None:
    _die_with_parent()
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    gevent.reinit()
    logging.getLogger("relayd").removeHandler(master_handler)
    configure_logging(config)
    anvil.use_worker(number)
    jail = chroot.jail_directory(config)
    if jail is not None:
        config = chroot.queue_relative(config)
    relay = Relay(config, listen=listen, worker=number, workers=anvil.workers,
                  sockets=sockets, anvil=anvil)
    _load_lazy_parts()
    if jail is not None:
        chroot.prepare(relay.configurations())
    privileges.drop(config, jail)
    relay.start()
    metrics = WorkerMetrics(config, number, sockets) if metrics_address(config) else None
    if metrics is not None:
        metrics.start()
    heartbeat = _beat(relay, heartbeats, number)
    _serve(relay)
    heartbeat.stop()
    if metrics is not None:
        metrics.stop()


def _load_lazy_parts() -> None:
    """Import what gevent and the codecs would import on first use, while this
    worker may still read every file: after the privilege drop the Python
    installation may not be readable (e.g. one under root's home)."""
    hub = gevent.get_hub()
    hub.resolver, hub.threadpool  # noqa: B018 - created (and their modules imported) now
    "relayd.invalid".encode("idna")


def _beat(relay: Relay, heartbeats, number: int):
    """Write this worker's heartbeat (and queue size) from its event loop, every
    HEARTBEAT_INTERVAL: the master reads it for readiness and the watchdog."""
    def beat():
        heartbeats.beat(number, relay.queue_size())
    timer = gevent.get_hub().loop.timer(0.0, HEARTBEAT_INTERVAL)
    timer.start(beat)
    return timer


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the master dies, however it dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the master died before prctl took effect
        os._exit(1)


def command(name: str, config) -> int:
    """``relayd reload|stop|status``: signal or ask the running master, as
    ``postfix reload|stop|status`` do. Exit status 0, or 1 when no relayd runs."""
    queue_directory = config["queue_directory"]
    pid = master_pid(queue_directory)
    if pid is None:
        print(f"relayd: fatal: the relayd mail system is not running "
              f"(queue directory {queue_directory})", file=sys.stderr)
        return 1
    try:
        os.kill(pid, 0)
    except PermissionError:
        print(f"relayd: fatal: only root and the mail system owner may {name} relayd",
              file=sys.stderr)
        return 77  # EX_NOPERM
    if name == "reload":
        os.kill(pid, signal.SIGHUP)
        print(f"relayd: refreshing the relayd mail system (master pid {pid})")
        return 0
    if name == "stop":
        os.kill(pid, signal.SIGTERM)
        print(f"relayd: stopping the relayd mail system (master pid {pid})")
        return _wait_gone(queue_directory, pid, 2 * config["relayd_drain_timeout"] + 10)
    return _print_status(queue_directory, pid, config["ipc_timeout"])


def _wait_gone(queue_directory: str, pid: int, timeout: float) -> int:
    """Wait until the master ``pid`` has released the queue (as postfix stop waits)."""
    import time
    deadline = time.monotonic() + timeout
    while master_pid(queue_directory) == pid:
        if time.monotonic() > deadline:
            print(f"relayd: fatal: master pid {pid} still running after {timeout:.0f}s",
                  file=sys.stderr)
            return 1
        time.sleep(0.1)
    return 0


def _print_status(queue_directory: str, pid: int, timeout: float) -> int:
    """The master, then each worker: pid, sessions open, messages queued by state."""
    import json
    from relayd.control import request_all
    print(f"relayd: the relayd mail system is running: master pid {pid}")
    try:
        answers = [json.loads(a) for a in request_all(queue_directory, "status", timeout)]
    except (OSError, ValueError) as exc:
        print(f"relayd: warning: workers do not answer: {exc}", file=sys.stderr)
        return 0
    for worker in answers:
        states = ", ".join(f"{state} {n}" for state, n in sorted(worker["queue"].items()))
        # A chrooted worker names its queue relative to the queue directory.
        queue = os.path.normpath(os.path.join(queue_directory, worker["queue_directory"]))
        print(f"worker pid {worker['pid']}: {worker['sessions']} sessions, "
              f"{sum(worker['queue'].values())} messages queued"
              + (f" ({states})" if states else "") + f", queue {queue}")
    return 0

"""Postfix-format mail log lines.

Every part of relayd logs through a standard :mod:`logging` logger named
after the Postfix program that would have written the line: ``relayd.smtpd``,
``relayd.cleanup``, ``relayd.qmgr``, ``relayd.smtp``, ``relayd.bounce``,
``relayd.master``. :class:`MaillogFormatter` renders a record the way
Postfix's syslog lines look, so pflogsumm and other log tools read them::

    Nov 25 09:36:43 mail relayd/smtpd[4242]: 4F3A21C0B2: client=localhost[127.0.0.1]

Every line is made :func:`printable` as it is formatted, as Postfix's
msg_output does: client and next-hop strings (HELO names, addresses, header
texts, replies) can carry CR, LF, escape sequences or Unicode line
separators, and none of them may start a new log line or drive a terminal.

Embedding programs keep control of logging: nothing here installs a handler
unless the ``relayd`` command calls :func:`configure`; they get the same
sanitising by using :class:`MaillogFormatter`.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import weakref

import gevent
from greenlet import getcurrent

from relayd.smtp.text import printable

SMTPD = logging.getLogger("relayd.smtpd")
CLEANUP = logging.getLogger("relayd.cleanup")
QMGR = logging.getLogger("relayd.qmgr")
SMTP = logging.getLogger("relayd.smtp")
BOUNCE = logging.getLogger("relayd.bounce")
MASTER = logging.getLogger("relayd.master")

# Postfix marks severities with a word before the text (msg_warn, msg_error, msg_fatal, msg_panic).
_SEVERITY_PREFIX = {
    logging.WARNING: "warning: ",
    logging.ERROR: "error: ",
    logging.CRITICAL: "fatal: ",
}


class MaillogFormatter(logging.Formatter):
    """Formats records as ``MMM dd HH:MM:SS HOST relayd/PROGRAM[PID]: text``."""

    def __init__(self, hostname: str | None = "localhost", *, with_timestamp: bool = True,
                 syslog_name: str = "relayd"):
        super().__init__()
        self.hostname = hostname  # None: left out (syslog and the journal add their own)
        self.with_timestamp = with_timestamp
        self.syslog_name = syslog_name
        self._second = -1
        self._prefix = ""
        self.pid = os.getpid()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        text = _SEVERITY_PREFIX.get(record.levelno, "") + printable(record.getMessage())
        if record.exc_info:  # a traceback keeps its lines
            text += "\n" + self.formatException(record.exc_info)
        syslog_name = self.syslog_name
        if _service_names and record.name == SMTPD.name:
            syslog_name = _service_names.get(getcurrent(), syslog_name)
        return self.line(program_name(record.name, syslog_name), text, record.created,
                         record.process)

    def line(self, program: str, text: str, created: float, pid: int | None = None) -> str:
        """One log line of ``program`` (e.g. "relayd/smtpd") saying ``text``."""
        line = f"{program}[{pid or self.pid}]: {text}"
        if self.with_timestamp:
            second = int(created)
            if second != self._second:  # strftime once a second, not once a line
                self._second = second
                self._prefix = time.strftime("%b %d %H:%M:%S ", time.localtime(second)) \
                    + (self.hostname + " " if self.hostname is not None else "")
            line = self._prefix + line
        return line


def whatsup(queue_id: str, action: str, where: str, origin: str, text: str, *,
            sender: str | None = None, recipient: str | None = None,
            protocol: str | None = None, helo: str | None = None,
            text_last: bool = False) -> str:
    """The line Postfix logs for a refused (or warned, held, ...) request: its
    log_whatsup (smtpd_check.c)::

        NOQUEUE: reject: RCPT from host[addr]: 554 5.7.1 <b@y>: Relay access
        denied; from=<a@x> to=<b@y> proto=ESMTP helo=<h>

    or, with ``text_last``, cleanup's cleanup_act_log, where ``where`` names the
    header or body line and the text comes last::

        QID: reject: header Subject: x from host[addr]; from=<a@x> to=<b@y>
        proto=ESMTP helo=<h>: 550 5.7.1 text

    A field that is None is left out (a null sender is "", logged ``from=<>``).
    """
    tail = ""
    if sender is not None:
        tail += f" from=<{sender}>"
    if recipient is not None:
        tail += f" to=<{recipient}>"
    if protocol is not None:
        tail += f" proto={protocol}"
    if helo is not None:
        tail += f" helo=<{helo}>"
    if text_last:
        return f"{queue_id}: {action}: {where} from {origin};{tail}" + (f": {text}" if text else "")
    return f"{queue_id}: {action}: {where} from {origin}: {text};{tail}"


# master.cf's "-o syslog_name=NAME" of the smtpd service each session greenlet serves,
# for the ones that differ from main.cf's (empty, and never looked at, when none does).
_service_names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_main = {"syslog_name": "relayd"}


def use_service_syslog_name(syslog_name: str) -> None:
    """Tag the smtpd lines the current greenlet logs from now on
    ``syslog_name/smtpd``, as master.cf's ``-o syslog_name=...`` does for the
    smtpd of one service (Debian's submission: ``postfix/submission/smtpd``)."""
    if syslog_name != _main["syslog_name"]:
        _service_names[getcurrent()] = syslog_name


def program_name(logger_name: str, syslog_name: str = "relayd") -> str:
    """``relayd.smtpd`` -> ``relayd/smtpd`` (``$syslog_name/smtpd``): the syslog
    tag Postfix would use."""
    if logger_name.startswith("relayd."):
        return syslog_name + "/" + logger_name.split(".")[1]
    return syslog_name


class BatchingHandler(logging.Handler):
    """Writes log lines to a file descriptor, one ``write`` per event-loop turn.

    At thousands of messages a second, a write per line was a measurable share
    of the relay's CPU; lines logged during one turn of the gevent loop go out
    together at its end. Lines from other threads are written at once.
    """

    def __init__(self, fd: int, *, batching: bool = True):
        super().__init__()
        self.fd = fd
        self.batching = batching
        self._pending: list[str] = []
        self._loop = gevent.get_hub().loop
        self._loop_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.emit_line(line, record.levelno)

    def emit_line(self, line: str, levelno: int = logging.INFO) -> None:
        """Queue one formatted line (written at the end of this loop turn)."""
        if not self.batching or threading.get_ident() != self._loop_thread:
            self._write(line + "\n")
            return
        if not self._pending:
            self._loop.run_callback(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = self._pending, []
            self._write("\n".join(lines) + "\n")

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self.fd, data):]

    def close(self) -> None:
        self.flush()
        super().close()


class JournalHandler(BatchingHandler):
    """stderr when it is systemd's journal stream: each line with the ``<N>``
    priority prefix of sd-daemon(3); the journal adds time and host."""

    def emit_line(self, line: str, levelno: int = logging.INFO) -> None:
        super().emit_line(f"<{_SEVERITY.get(levelno, 6)}>{line}", levelno)


class SyslogHandler(BatchingHandler):
    """Postfix's default: one datagram per line to the local syslog socket,
    ``<PRI>Mmm dd HH:MM:SS tag[pid]: text`` (syslog adds the host name)."""

    def __init__(self, sock, facility: str, *, batching: bool = True):
        super().__init__(-1, batching=batching)
        self.sock = sock
        self.facility = FACILITIES[facility] * 8

    def emit_line(self, line: str, levelno: int = logging.INFO) -> None:
        super().emit_line(f"<{self.facility + _SEVERITY.get(levelno, 6)}>{line}", levelno)

    def _write(self, text: str) -> None:
        for line in text.splitlines():
            try:
                self.sock.send(line.encode("utf-8", "replace"))
            except OSError:
                pass  # syslogd restarting or its buffer full: the line is lost, as syslog(3)'s


# syslog(3) severities and facilities
_SEVERITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
FACILITIES = {"user": 1, "mail": 2, "daemon": 3,
              **{f"local{n}": 16 + n for n in range(8)}}
SYSLOG_SOCKET = "/dev/log"


def configure(hostname: str, maillog_file: str = "", level: int = logging.INFO, *,
              batching: bool = True, syslog_name: str = "relayd",
              syslog_facility: str = "mail") -> logging.Handler:
    """Send relayd's log lines where Postfix would: to ``maillog_file``
    (``/dev/stderr`` or ``-``: stderr), else to the journal when stderr is
    systemd's journal stream (``$JOURNAL_STREAM``), else to syslog through
    ``/dev/log``, else (no syslog daemon) to stderr.

    Used by the ``relayd`` command only, which owns its process: it also turns
    off the per-record work of :mod:`logging` that mail logs never show
    (caller lookup, thread names, process id). An embedding program configures the
    ``relayd`` logger itself. ``batching=False`` writes each line at once,
    for a process that runs no gevent loop (the daemon's master).
    """
    handler, formatter = _destination(hostname, maillog_file, batching, syslog_facility)
    formatter.syslog_name = _main["syslog_name"] = syslog_name
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logProcesses = False  # getpid() is a system call per record; the formatter knows it
    handler.setFormatter(formatter)
    root = logging.getLogger("relayd")
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    if level <= logging.INFO:
        for logger in (SMTPD, CLEANUP, QMGR, SMTP, BOUNCE):
            logger.info = _direct_info(logger.name, handler, formatter)
    return handler


def _destination(hostname: str, maillog_file: str, batching: bool, facility: str):
    """The handler and formatter for the log destination (see configure)."""
    if maillog_file and maillog_file not in ("/dev/stderr", "-"):
        fd = os.open(maillog_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        return BatchingHandler(fd, batching=batching), MaillogFormatter(hostname)
    if not maillog_file and journal_is_stderr():
        return (JournalHandler(sys.stderr.fileno(), batching=batching),
                MaillogFormatter(None, with_timestamp=False))
    if not maillog_file:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(SYSLOG_SOCKET)
        except OSError:
            sock.close()
        else:
            return SyslogHandler(sock, facility, batching=batching), MaillogFormatter(None)
    return BatchingHandler(sys.stderr.fileno(), batching=batching), MaillogFormatter(hostname)


def journal_is_stderr() -> bool:
    """``$JOURNAL_STREAM`` (device:inode) names this process's stderr (systemd.exec(5))."""
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return os.environ.get("JOURNAL_STREAM", "") == f"{st.st_dev}:{st.st_ino}"


def _direct_info(name: str, handler: BatchingHandler, formatter: MaillogFormatter):
    """``logger.info`` for the mail log's busiest loggers, straight to ``handler``.

    The standard path builds a LogRecord and walks handlers, filters and
    locks for each of the seven lines a message costs; this formats the line
    and queues it, for the ``relayd`` command's own handler only.
    """
    program = program_name(name, formatter.syslog_name)
    per_service = name == SMTPD.name

    def info(msg, *args, **kwargs):
        if kwargs:  # exc_info, stack_info...: the general path knows them
            return logging.Logger.info(logging.getLogger(name), msg, *args, **kwargs)
        tag = program
        if per_service and _service_names:
            tag = program_name(name, _service_names.get(getcurrent(), formatter.syslog_name))
        handler.emit_line(formatter.line(tag, printable(msg % args if args else msg),
                                         time.time()))
    return info

"""Postfix-format mail log lines.

Every part of relayd logs through a standard :mod:`logging` logger named
after the Postfix program that would have written the line: ``relayd.smtpd``,
``relayd.cleanup``, ``relayd.qmgr``, ``relayd.smtp``, ``relayd.bounce``,
``relayd.master``. :class:`MaillogFormatter` renders a record the way
Postfix's syslog lines look, so pflogsumm and other log tools read them::

    Nov 25 09:36:43 mail relayd/smtpd[4242]: 4F3A21C0B2: client=localhost[127.0.0.1]

Embedding programs keep control of logging: nothing here installs a handler
unless the ``relayd`` command calls :func:`configure`.
"""
from __future__ import annotations

import logging
import os
import sys
import time

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

    def __init__(self, hostname: str = "localhost", *, with_timestamp: bool = True):
        super().__init__()
        self.hostname = hostname
        self.with_timestamp = with_timestamp

    def format(self, record: logging.LogRecord) -> str:
        program = record.name.replace(".", "/", 1) if record.name.startswith("relayd.") else "relayd"
        program = program.split(".", 1)[0]
        text = _SEVERITY_PREFIX.get(record.levelno, "") + record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        line = f"{program}[{record.process or os.getpid()}]: {text}"
        if self.with_timestamp:
            stamp = time.strftime("%b %d %H:%M:%S", time.localtime(record.created))
            line = f"{stamp} {self.hostname} {line}"
        return line


def configure(hostname: str, maillog_file: str = "", level: int = logging.INFO) -> logging.Handler:
    """Send relayd's log lines to ``maillog_file`` (or stderr when empty).

    Used by the ``relayd`` command only; an embedding program configures
    the ``relayd`` logger itself.
    """
    if maillog_file and maillog_file not in ("/dev/stderr", "-"):
        handler: logging.Handler = logging.FileHandler(maillog_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaillogFormatter(hostname))
    root = logging.getLogger("relayd")
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler

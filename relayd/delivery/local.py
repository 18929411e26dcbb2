"""The local delivery agent: Postfix's local(8) with Maildir mailboxes.

A recipient in a local domain is expanded through alias_maps
(relayd.rewrite.aliases); each resulting local user gets the message in
``BASE/USER/Maildir/new`` and each remote address gets a new copy queued
for it (Postfix: "forwarded as QID"). BASE is ``relayd_maildir_base`` or
``$queue_directory/../mail``. The files belong to the user relayd runs as.

Maildir delivery (maildir(5)): write ``tmp/UNIQUE``, fsync it, rename it
into ``new/``, fsync ``new/``; the disk work runs in gevent's threadpool so
one slow disk never stalls other greenlets. The message gets
``Return-Path:``, ``X-Original-To:`` and ``Delivered-To:`` headers, as
Postfix's local(8) writes them, and leaves the queue's wire form (CRLF,
dot-stuffed) for plain LF lines.
"""
from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Callable

import gevent

from relayd.addresses import split_address
from relayd.delivery.status import DeliveryRequest, DeliveryResult, RecipientRef, record_outcome
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT, Outcome
from relayd.rewrite.aliases import LocalAliases
from relayd.rewrite.maps import strip_extension
from relayd.tables.base import TemporaryLookupError

__all__ = ["LocalDeliveryAgent", "maildir_base", "write_maildir", "mailbox_text"]

log = logging.getLogger("relayd.local")

# A user name that is safe as one path component under the maildir base.
_SAFE_USER = re.compile(r"[a-z0-9_][a-z0-9._=+-]{0,63}")
_sequence = itertools.count(1)

#: ``forward(request, recipient, addresses) -> queue id`` queues a copy for remote addresses.
Forwarder = Callable[[DeliveryRequest, RecipientRef, list[str]], str]


def maildir_base(config) -> str:
    """``relayd_maildir_base``, else ``$queue_directory/../mail``."""
    base = config["relayd_maildir_base"]
    if not base:
        base = os.path.join(os.path.dirname(config["queue_directory"].rstrip("/")), "mail")
    return base


def mailbox_text(request: DeliveryRequest, recipient: RecipientRef, user_address: str) -> bytes:
    """The message as a mailbox file holds it: LF lines, no dot-stuffing,
    local(8)'s delivery headers in front."""
    head = (f"Return-Path: <{request.sender}>\n"
            f"X-Original-To: {recipient.original or recipient.address}\n"
            f"Delivered-To: {user_address}\n").encode("utf-8", "replace")
    lines = request.content.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    body = b"\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    return head + body + b"\n"


def _unique_name(myhostname: str) -> str:
    """A maildir(5) unique name: time, microseconds, pid, sequence, host."""
    now = time.time()
    host = myhostname.replace("/", r"\057").replace(":", r"\072")
    return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_sequence)}.{host}"


def write_maildir(maildir: str, data: bytes, myhostname: str) -> str:
    """Deliver ``data`` into ``maildir`` (created if missing); the path in new/."""
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, sub), mode=0o700, exist_ok=True)
    name = _unique_name(myhostname)
    tmp, new = os.path.join(maildir, "tmp", name), os.path.join(maildir, "new", name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, new)
    dir_fd = os.open(os.path.join(maildir, "new"), os.O_RDONLY)
    try:
        os.fsync(dir_fd)   # the rename itself must survive a crash before we say "sent"
    finally:
        os.close(dir_fd)
    return new


class LocalDeliveryAgent:
    """Delivers to local recipients: aliases, Maildir, forwarding."""

    def __init__(self, config, forward: Forwarder):
        self.aliases = LocalAliases(config)
        self.base = maildir_base(config)
        self.myhostname = config["myhostname"]
        self.delimiters = config["recipient_delimiter"]
        self.forward = forward

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        """One attempt for every recipient of ``request``; logs one line each."""
        result = DeliveryResult()
        for rcpt in request.recipients:
            start = time.time()
            outcome = self._one(request, rcpt)
            record_outcome(log, request, result, rcpt, outcome, (start, start, time.time()))
        return result

    def _one(self, request: DeliveryRequest, rcpt: RecipientRef) -> Outcome:
        localpart, _ = split_address(rcpt.address)
        try:
            expansion = self.aliases.expand(localpart)
        except TemporaryLookupError as exc:
            return Outcome(DEFERRED, "4.3.0", f"alias database unavailable: {exc}", "local")
        done = []
        try:
            for user in expansion.mailboxes:
                done.append(self._mailbox(request, rcpt, user))
            if expansion.forwards:
                qid = self.forward(request, rcpt, expansion.forwards)
                done.append(f"forwarded as {qid}")
        except OSError as exc:
            return Outcome(DEFERRED, "4.2.0", f"maildir delivery failed: {exc}", "local")
        except ValueError as exc:
            return Outcome(BOUNCED, "5.1.3", str(exc), "local")
        if expansion.refused:
            item, reason = expansion.refused[0]
            return Outcome(BOUNCED, "5.7.1", f"{item}: {reason}", "local")
        return Outcome(SENT, "2.0.0", ", ".join(dict.fromkeys(done)), "local")

    def _mailbox(self, request: DeliveryRequest, rcpt: RecipientRef, user: str) -> str:
        name = strip_extension(user, self.delimiters)[0].lower()
        if not _SAFE_USER.fullmatch(name):
            raise ValueError(f"unsafe mailbox name: {user!r}")
        data = mailbox_text(request, rcpt, rcpt.address)
        maildir = os.path.join(self.base, name, "Maildir")
        gevent.get_hub().threadpool.apply(write_maildir, (maildir, data, self.myhostname))
        return "delivered to maildir"

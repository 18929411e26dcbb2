"""The local delivery agent: Postfix's local(8) with Maildir mailboxes.

A recipient in a local domain is expanded through alias_maps
(relayd.rewrite.aliases); each resulting local user gets the message in
their Maildir (relayd.delivery.maildir: ``BASE/USER/Maildir``, or
``HOME/$home_mailbox``) and each remote address gets a new copy queued for
it (Postfix: "forwarded as QID").

Who writes the mailbox: started as root (mail_owner not root), the
privileged local delivery process, as the recipient
(relayd.delivery.mailbox_service); this worker only sends it the mailbox
text. Otherwise there is no other identity to take: this process writes as
relayd's own user, into BASE/USER/Maildir (a mail store owned by the mail
system, as Postfix's virtual(8) with one uid); a home_mailbox of another
account is deferred (4.3.0). Either way no symlink is followed below BASE
or the home directory, and the disk work runs off the gevent loop.

The message gets ``Return-Path:``, ``X-Original-To:`` and
``Delivered-To:`` headers, as Postfix's local(8) writes them, and leaves
the queue's wire form (CRLF, dot-stuffed) for plain LF lines.
"""
from __future__ import annotations

import logging
import os
import pwd
import time
from typing import Callable

import gevent

from relayd.addresses import split_address
from relayd.delivery.mailbox_service import MailboxClient, socket_path
from relayd.delivery.maildir import SAFE_USER, MailboxPlace, failure, open_trusted, write_below
from relayd.delivery.status import DeliveryRequest, DeliveryResult, RecipientRef, record_outcome
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT, Outcome
from relayd.rewrite.aliases import LocalAliases
from relayd.rewrite.maps import strip_extension
from relayd.tables.base import TemporaryLookupError

__all__ = ["LocalDeliveryAgent", "mailbox_text"]

log = logging.getLogger("relayd.local")


#: ``forward(request, recipient, addresses) -> queue id`` queues a copy for remote addresses.
Forwarder = Callable[[DeliveryRequest, RecipientRef, list[str]], str]


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


class LocalDeliveryAgent:
    """Delivers to local recipients: aliases, Maildir, forwarding."""

    def __init__(self, config, forward: Forwarder):
        self.aliases = LocalAliases(config)
        self.place = MailboxPlace(config)
        # The daemon's master binds the service's socket before it forks the workers.
        path = socket_path(config["queue_directory"])
        self.service = MailboxClient(path, config["ipc_timeout"]) if os.path.exists(path) else None
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
                outcome = self._mailbox(request, rcpt, user)
                if outcome.status != SENT:
                    return outcome
                done.append(outcome.reason)
            if expansion.forwards:
                qid = self.forward(request, rcpt, expansion.forwards)
                done.append(f"forwarded as {qid}")
        except OSError as exc:   # queueing the forwarded copy
            return Outcome(DEFERRED, "4.2.0", f"cannot forward: {exc}", "local")
        except ValueError as exc:
            return Outcome(BOUNCED, "5.1.3", str(exc), "local")
        if expansion.refused:
            item, reason = expansion.refused[0]
            return Outcome(BOUNCED, "5.7.1", f"{item}: {reason}", "local")
        return Outcome(SENT, "2.0.0", ", ".join(dict.fromkeys(done)), "local")

    def _mailbox(self, request: DeliveryRequest, rcpt: RecipientRef, user: str) -> Outcome:
        name = strip_extension(user, self.delimiters)[0].lower()
        if not SAFE_USER.fullmatch(name):
            raise ValueError(f"unsafe mailbox name: {user!r}")
        data = mailbox_text(request, rcpt, rcpt.address)
        if self.service is not None:
            return self.service.deliver(name, data)
        return gevent.get_hub().threadpool.apply(self._write_here, (name, data))

    def _write_here(self, name: str, data: bytes) -> Outcome:
        """Without the privileged process: as this process's own user."""
        try:
            if self.place.in_home:
                try:
                    account = pwd.getpwnam(name)
                except KeyError:
                    return Outcome(BOUNCED, "5.1.1", f'unknown user: "{name}"', "local")
                if account.pw_uid != os.geteuid():
                    return Outcome(DEFERRED, "4.3.0", f"cannot deliver to {name}'s home_mailbox "
                                   f"as uid {os.geteuid()}: relayd must start as root to write as "
                                   "the recipient", "local")
                components = self.place.home_components()
                top, top_path = open_trusted(account.pw_dir), account.pw_dir
            else:
                os.makedirs(self.place.base, mode=0o700, exist_ok=True)
                top, top_path = open_trusted(self.place.base), self.place.base
                components = [name, "Maildir"]
            write_below(top, top_path, components, data, self.myhostname)
        except ValueError as exc:   # home_mailbox that is no Maildir
            return Outcome(DEFERRED, "4.3.0", f"mail system configuration error: {exc}", "local")
        except OSError as exc:
            return failure(exc)
        return Outcome(SENT, "2.0.0", "delivered to maildir", "local")

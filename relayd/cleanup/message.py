"""cleanup(8) for one smtpd service: a message from its first header byte to the queue commit.

The SMTP dialogue opens a :class:`CleanupMessage` at DATA, feeds it the DATA
stream, and gets replies back; it never touches the queue itself::

    message = cleanup.open(queue_id=..., sender=..., params=..., recipients=[...],
                           client_name=..., client_addr=..., helo=..., protocol=...,
                           actions=policy.transaction_actions())
    message.feed(chunk)                      # each DataChunk (wire form)
    refusal = message.end(event.size)        # checks, rewriting, hop count: Reply or None
    ...                                      # the end-of-data restrictions run here
    outcome = message.commit(policy.transaction_actions())   # Queued, or a refusal Reply

What is written, in order: the Received: header, the PREPEND actions of the
restriction lists known at DATA, then the client's message as the one parser
(:class:`~relayd.cleanup.checker.ContentChecker`) passes it on: header and
body checks applied, primary header addresses rewritten
(:mod:`relayd.cleanup.headers`). At the commit the actions of the
restriction lists and of the content checks are merged
(:func:`~relayd.cleanup.disposition.disposition`), the envelope addresses are
rewritten, and the queue store makes the message durable.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from relayd.cleanup.actions import LogContext
from relayd.cleanup.checker import ContentChecker, ContentResult
from relayd.cleanup.checks import ContentChecks
from relayd.cleanup.disposition import disposition, prepended_headers
from relayd.cleanup.headers import HeaderRewriter, PrimaryHeaders
from relayd.cleanup.received import received_header
from relayd.maillog import whatsup
from relayd.metrics import METER
from relayd.queue.envelope import Envelope
from relayd.queue.store import QueueWriteError
from relayd.rewrite import Rewriter
from relayd.rewrite.headers import HeaderRules
from relayd.smtp.replies import R451_QUEUE_WRITE_ERROR, R554_TOO_MANY_HOPS, Reply
from relayd.tables.base import TemporaryLookupError, open_table_or_surrogate

smtpd_log = logging.getLogger("relayd.smtpd")
log = logging.getLogger("relayd.cleanup")


@dataclass(frozen=True, slots=True)
class Client:
    """Who sent the message, as the Received: header and the log lines name it."""

    name: str
    addr: str
    helo: str
    protocol: str

    @property
    def peer(self) -> str:
        """"name[addr]", as Postfix's log lines write a client."""
        return f"{self.name}[{self.addr}]"


@dataclass(frozen=True, slots=True)
class Queued:
    """A message cleanup has handed over: committed to the queue (or DISCARDed,
    ``discarded``: Postfix claims delivery and drops it). ``sender`` and
    ``recipients`` are the envelope as queued (rewritten; redirected, with BCCs)."""

    queue_id: str
    sender: str = ""
    recipients: tuple[str, ...] = ()
    size: int = 0
    message_id: str = ""
    discarded: bool = False


class Cleanup:
    """The cleanup settings of one configuration (an smtpd service's main.cf with
    its ``-o`` overrides), read and opened once; :meth:`open` starts a message."""

    def __init__(self, config, store):
        self.config = config
        self.store = store
        self.rewriter = Rewriter(config)
        HeaderRules.of(config)  # a bad local_header_rewrite_clients must stop startup
        self.content_checks = ContentChecks.from_config(config, opener=open_table_or_surrogate)
        self.myhostname = config["myhostname"]
        self.mail_name = config["mail_name"]
        self.hopcount_limit = config["hopcount_limit"]
        self.sasl_header = config["smtpd_sasl_authenticated_header"]

    def open(self, *, queue_id: str, sender: str, params: dict, recipients: list[str],
             client_name: str, client_addr: str, helo: str, protocol: str,
             actions, tls_comment: tuple[str, ...] = (),
             sasl_username: str = "", received: bytes | None = None) -> "CleanupMessage":
        """Start the message of one transaction at DATA; ``actions`` are the
        restriction lists' verdicts so far (their PREPENDs are written now);
        ``tls_comment`` the Received lines smtpd_tls_received_header adds;
        ``sasl_username`` the client's login (in Received with
        smtpd_sasl_authenticated_header); ``received`` replaces smtpd's
        Received: header (pickup writes its own, in wire form)."""
        if not self.sasl_header:
            sasl_username = ""
        return CleanupMessage(self, queue_id, sender, params, recipients,
                              Client(client_name, client_addr, helo, protocol), actions,
                              tls_comment, sasl_username, received)


class CleanupMessage:
    """One message on its way into the queue (see the module doc). Every path
    that does not end in :meth:`commit` must :meth:`abort`."""

    __slots__ = ("cleanup", "queue_id", "sender", "params", "recipients", "client", "writer",
                 "added", "primary", "checker", "content", "size")

    def __init__(self, cleanup: Cleanup, queue_id: str, sender: str, params: dict,
                 recipients: list[str], client: Client, actions, tls_comment=(),
                 sasl_username: str = "", received: bytes | None = None):
        self.cleanup = cleanup
        self.queue_id = queue_id
        self.sender = sender
        self.params = params
        self.recipients = recipients
        self.client = client
        self.writer = cleanup.store.content_writer(queue_id)
        added = received or received_header(
            helo=client.helo, client_name=client.name, client_addr=client.addr,
            myhostname=cleanup.myhostname, mail_name=cleanup.mail_name,
            protocol=client.protocol, queue_id=queue_id, recipients=recipients, now=time.time(),
            tls_comment=tls_comment, sasl_username=sasl_username)
        # PREPEND actions of the restriction lists are known by now; those of the
        # end-of-data list come too late to be written (see docs/restrictions.md).
        added += prepended_headers(actions)
        self.added = len(added)
        self.writer.write(added)
        rewriter = HeaderRewriter.from_config(cleanup.config, client.addr)
        self.primary = PrimaryHeaders(rewriter if rewriter.active else None)
        self.checker = ContentChecker(cleanup.content_checks, LogContext(
            queue_id, client.peer, sender, recipients[-1], client.protocol, client.helo),
            primary=self.primary)
        self.content: ContentResult | None = None
        self.size = 0    # of the message as queued, known at end()

    def feed(self, data: bytes, checked: bool = False) -> None:
        """The next DATA chunk, in wire form (``checked``: as the DATA reader
        found it clean, :class:`~relayd.smtp.events.DataChunk`). cleanup(8)
        order: the header checks see the client's headers, the rewritten ones
        are queued."""
        stored = self.checker.feed(data)
        verbatim = self.checker.verbatim if checked else 0
        if verbatim == len(stored):
            self.writer.write(stored, checked)
        elif checked and stored == data:   # the headers went through unchanged (a memcmp)
            self.writer.write(data, True)
        else:   # the edited or held part is checked in full, the client's bytes after it are not again
            self.writer.write(stored[:len(stored) - verbatim])
            self.writer.write(stored[len(stored) - verbatim:], checked=True)

    def end(self, size: int) -> Reply | None:
        """The end of the client's data (``size`` octets after unstuffing): the
        refusal of the content checks, header rewriting or the hop count, or
        None. A refused message is aborted."""
        rest, self.content = self.checker.finish()
        self.writer.write(rest)
        if self.content.reply is not None:   # the checker logged "reject: header ..."
            self.abort()
            METER.inc("cleanup_messages_rejected")
            return self.content.reply
        rewriter = self.primary.rewriter
        if rewriter is not None and rewriter.error is not None:
            log.warning("%s: header address rewriting failed: %s", self.queue_id, rewriter.error)
            self.abort()
            return R451_QUEUE_WRITE_ERROR
        if self.primary.hop_count >= self.cleanup.hopcount_limit:
            self.abort()
            client = self.client
            smtpd_log.info("%s", whatsup(self.queue_id, "reject", "END-OF-MESSAGE", client.peer,
                                         str(R554_TOO_MANY_HOPS), sender=self.sender,
                                         protocol=client.protocol, helo=client.helo))
            METER.inc("cleanup_messages_rejected")
            return R554_TOO_MANY_HOPS
        self.size = self.added + size + self.content.size_delta + (
            rewriter.size_delta if rewriter is not None else 0)
        return None

    def commit(self, actions) -> Queued | Reply:
        """Queue the message with the restriction lists' ``actions`` and the
        content checks' merged: :class:`Queued`, or the refusal (451) of an
        envelope rewriting or queue write that failed (the message is aborted)."""
        how = disposition(actions, self.content)
        if how.discard:  # Postfix claims delivery and drops the message
            self.abort()
            return Queued(self.queue_id, discarded=True)
        cleanup, client = self.cleanup, self.client
        try:
            sender = cleanup.rewriter.sender(self.sender)
            recipients = cleanup.rewriter.recipients(how.recipients(self.recipients))
        except TemporaryLookupError as exc:
            log.warning("%s: address rewriting failed: %s", self.queue_id, exc)
            self.abort()
            return R451_QUEUE_WRITE_ERROR
        size = self.size
        envelope = Envelope(
            sender=sender, recipients=recipients, arrival_time=time.time(),
            client_name=client.name, client_addr=client.addr, helo=client.helo,
            protocol=client.protocol, size=size,
            params={k: v for k, v in self.params.items() if v is not None},
            attrs={"filter": how.filter} if how.filter else {})
        try:
            cleanup.store.commit(self.queue_id, envelope, self.writer, hold=how.hold)
        except QueueWriteError as exc:
            log.warning("%s: queue file write error: %s", self.queue_id, exc)
            self.abort()
            return R451_QUEUE_WRITE_ERROR
        METER.inc("cleanup_messages_processed")
        message_id = self.primary.message_id or ""
        if message_id:
            log.info("%s: message-id=%s", self.queue_id, message_id)
        return Queued(self.queue_id, sender, tuple(r.address for r in recipients), size,
                      message_id)

    def abort(self) -> None:
        """Drop the message and whatever of it was written (safe to call twice)."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None

"""The queue manager: Postfix's qmgr(8) on top of the queue store.

One scheduler greenlet takes the messages that are due (new ones, and
deferred ones whose next attempt has come), moves them to the active queue,
routes them and hands them to the delivery pool. When an attempt ends it
records each recipient's fate in the store, returns bounced recipients to
the sender in one DSN, and schedules the deferred ones.

Routing. Each pending recipient is resolved to a transport and next hop
(:class:`relayd.delivery.route.Router`: address class, sender-dependent
maps, relayhost, transport_maps): local domains go to the local delivery
agent (aliases, Maildir), others over SMTP to their next hop (MX delivery
when it is not bracketed); ``error:`` bounces, ``retry:`` defers,
``discard:`` drops. One message may so take several transports at once;
its attempt is recorded when the last of them ends.

Destinations (:mod:`relayd.delivery.limits`). The recipients of one
transport and next hop are delivered in parts of at most the transport's
destination recipient limit; each part is a job of the delivery pool under
its destination (transport and next hop; and the recipient when the
recipient limit is 1), which runs at most the transport's destination
concurrency limit (divided among the worker processes) at once, spaced by
its rate delay.

Scheduling. The scheduler runs when woken (:meth:`QueueManager.wake`, which
the store's ``on_commit`` calls for each new message) and otherwise every
``queue_run_delay``, or sooner when the earliest deferred message is due
sooner.

Backoff, as Postfix's qmgr_active.c does it: a message with deferred
recipients is retried after as long as it has already been queued, i.e.
``next_attempt = now + clamp(now - arrival_time, minimal_backoff_time,
maximal_backoff_time)`` — per-message exponential backoff that spreads
retries without storing a retry count.

Expiry. When an attempt leaves deferred recipients and the message is older
than ``maximal_queue_lifetime`` (``bounce_queue_lifetime`` for a bounce,
sender ""), qmgr logs ``QID: from=<s>, status=expired, returned to sender``
and those recipients bounce. Bounces for the null sender are not returned.

soft_bounce = yes: nothing bounces. A delivery agent's bounce is recorded as
a deferral (:func:`relayd.delivery.status.record_outcome`) and a message past
its lifetime stays queued, as Postfix's bounce_append() and bounce_flush().
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Mapping

import gevent
from gevent.event import Event

from relayd.delivery.limits import DestinationLimits, RateGate, TransportLimits
from relayd.delivery.local import LocalDeliveryAgent
from relayd.delivery.pool import DeliveryPool
from relayd.delivery.route import DISCARD, ERROR, LOCAL_AGENT, RETRY, SMTP, Router, parse_nexthop
from relayd.delivery.smtp import SmtpDeliveryAgent
from relayd.delivery.status import DeliveryRequest, DeliveryResult, RecipientRef, record_outcome
from relayd.metrics import METER
from relayd.pipeline.hooks import HookRegistry, fire_delivery_results
from relayd.queue.bounce import FAILED, build_dsn
from relayd.queue.envelope import Envelope, Recipient
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT, Outcome
from relayd.smtp.replies import same_class, split_status

__all__ = ["QueueManager"]

log = logging.getLogger("relayd.qmgr")
bounce_log = logging.getLogger("relayd.bounce")


class QueueManager:
    """Schedules deliveries from ``store`` with the settings in ``config``;
    ``workers`` is how many worker processes share the destination limits,
    ``anvil`` the node's shared table that holds rate delays across them."""

    def __init__(self, store, config: Mapping, *, clock: Callable[[], float] = time.time,
                 agent: SmtpDeliveryAgent | None = None,
                 hooks: HookRegistry | None = None, workers: int = 1, anvil=None) -> None:
        self.store, self.config, self.clock = store, config, clock
        self.hooks = hooks if hooks is not None else HookRegistry()
        self.agent = agent or SmtpDeliveryAgent(config, clock=clock)
        self.router = Router(config)
        self.local_agent = LocalDeliveryAgent(config, self._forward)
        self.limits = TransportLimits(config, workers, config["default_process_limit"])
        self.pool = DeliveryPool(config["default_destination_concurrency_limit"],
                                 config["default_process_limit"], RateGate(anvil))
        self._wakeup = Event()
        self._in_flight: set[str] = set()
        self._scheduler: gevent.Greenlet | None = None

    # --- control -------------------------------------------------------------------
    def start(self) -> None:
        """Start scheduling; the store's ``on_commit`` is pointed at
        :meth:`wake` unless someone else already listens to it."""
        if getattr(self.store, "on_commit", None) is None:
            self.store.on_commit = self.wake
        self._scheduler = gevent.spawn(self._run)

    def stop(self, timeout: float) -> None:
        """Stop scheduling, let deliveries in progress finish for up to
        ``timeout`` seconds, then interrupt the rest (they stay in the queue
        and are retried at the next start) and close cached connections."""
        if self._scheduler is not None:
            self._scheduler.kill()
            self._scheduler = None
        if not self.pool.join(timeout):
            self.pool.kill()
        self.agent.close()

    def wake(self, queue_id: str | None = None) -> None:
        """Look for due mail now (the store calls this after each commit)."""
        self._wakeup.set()

    def flush(self) -> None:
        """Make every deferred message due and deliver now (postqueue -f)."""
        for message in self.store.messages("deferred"):
            self.store.requeue(message.queue_id)
        self.wake()

    # --- scheduling -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wakeup.clear()
            self.run_once()
            self._wakeup.wait(self._sleep_time())

    def run_once(self) -> None:
        """One scan: activate and dispatch every due message not already in flight."""
        now = self.clock()
        for message in self.store.due(now):
            if message.queue_id not in self._in_flight:
                self._activate(message, now)

    def _sleep_time(self) -> float:
        delay = self.config["queue_run_delay"]
        earliest = self.store.next_due()
        if earliest is not None:
            delay = min(delay, max(0.0, earliest - self.clock()))
        return delay

    def _activate(self, message, now: float) -> None:
        qid, env = message.queue_id, message.envelope
        self.store.mark_active(qid)
        self._in_flight.add(qid)
        log.info("%s: from=<%s>, size=%d, nrcpt=%d (queue active)",
                 qid, env.sender, env.size, len(env.recipients))
        METER.observe("qmgr_messages_inserted_recipients", value=len(env.recipients))
        METER.observe("qmgr_messages_inserted_size_bytes", value=env.size)
        try:
            jobs = self._plan(message)
        except Exception as exc:   # a routing table cannot answer: keep the mail, retry later
            log.warning("%s: cannot route: %s", qid, exc)
            reason = f"routing failed: {exc}"   # ``exc`` is unbound once this block ends
            self.pool.submit("none", lambda: self._defer_here(message, now, reason, dsn="4.3.0"))
            return
        if not jobs:   # nothing pending (should not happen): record the message as done
            self.pool.submit("none", lambda: self._finish(message, DeliveryResult(), b""))
            return
        attempt = _Attempt(len(jobs))
        for key, run, indexes, limits in jobs:
            self.pool.submit(key, lambda run=run, indexes=indexes:
                             self._attempt(message, now, run, indexes, attempt),
                             limits.concurrency, limits.rate_delay)

    def _plan(self, message) -> list[tuple[str, Callable, list[int], DestinationLimits]]:
        """(pool key, agent call, recipient indexes, limits) per transport and
        next hop, in parts of at most the transport's recipient limit."""
        env, groups = message.envelope, {}
        for i in message.pending_recipients():
            transport = self.router.resolve(env.recipients[i].address, env.sender)
            groups.setdefault((transport.kind, transport.name, transport.nexthop), []).append(i)
        jobs = []
        for (kind, name, nexthop), indexes in groups.items():
            key, run = self._agent_for(kind, name, nexthop)
            limits = self.limits.of(name)
            size = limits.recipient_limit or len(indexes)
            for first in range(0, len(indexes), size):
                part = indexes[first:first + size]
                queue = (f"{key}\0{env.recipients[part[0]].address.lower()}"
                         if limits.per_recipient else key)
                jobs.append((queue, run, part, limits))
        return jobs

    def _agent_for(self, kind: str | None, name: str, nexthop: str) -> tuple[str, Callable]:
        """The pool key and ``run(request) -> DeliveryResult`` for one transport."""
        if kind == SMTP:
            try:
                destination = parse_nexthop(nexthop)
            except ValueError as exc:
                reason = f"bad relayhost: {exc}"   # ``exc`` is unbound once this block ends
                return "none", lambda req: self._no_agent(req, DEFERRED, "4.4.1", reason)
            return f"{name}:{destination.nexthop}", lambda req: self.agent.deliver(destination, req)
        if kind == LOCAL_AGENT:
            return f"{name}:local", self.local_agent.deliver
        if kind == ERROR:
            status, dsn, text = _error_text(nexthop)
            return "none", lambda req: self._no_agent(req, status, dsn, text, "relayd.error")
        if kind == RETRY:
            _, dsn, text = _error_text(nexthop, "4.0.0")
            return "none", lambda req: self._no_agent(req, DEFERRED, dsn, text, "relayd.retry")
        if kind == DISCARD:
            return "none", lambda req: self._no_agent(req, SENT, "2.0.0", nexthop or "discarded",
                                                      "relayd.discard")
        return "none", lambda req: self._no_agent(req, DEFERRED, "4.3.0",
                                                  f"mail transport unavailable: {name}")

    # --- one delivery ----------------------------------------------------------------
    def _request(self, message, content: bytes, active_time: float,
                 indexes: list[int] | None = None) -> DeliveryRequest:
        env = message.envelope
        rcpts = [RecipientRef(i, env.recipients[i].address, env.recipients[i].original)
                 for i in (message.pending_recipients() if indexes is None else indexes)]
        return DeliveryRequest(message.queue_id, env.sender, rcpts, content, env.arrival_time,
                               active_time, dict(env.params), self.config["soft_bounce"])

    def _attempt(self, message, active_time: float, run: Callable, indexes: list[int],
                 attempt: "_Attempt") -> None:
        """Run one transport's share of a message; the last share to end records them all."""
        content = b""
        try:
            content = self.store.read_content(message.queue_id)
            result = run(self._request(message, content, active_time, indexes))
        except Exception as exc:   # a bug or a queue read error: keep the mail, retry later
            log.exception("%s: delivery failed", message.queue_id)
            result = DeliveryResult({i: Outcome(DEFERRED, "4.3.0", f"delivery failed: {exc}")
                                     for i in indexes})
        attempt.result.outcomes.update(result.outcomes)
        attempt.pending -= 1
        if attempt.pending == 0:
            self._finish(message, attempt.result, content)

    def _no_agent(self, request: DeliveryRequest, status: str, dsn: str, reason: str,
                  logger: str = "relayd.qmgr") -> DeliveryResult:
        """Every recipient of ``request`` gets the same outcome, decided without
        a delivery (qmgr deferrals, the error and discard transports)."""
        result, now = DeliveryResult(), self.clock()
        for rcpt in request.recipients:
            record_outcome(logging.getLogger(logger), request, result, rcpt,
                           Outcome(status, dsn, reason), (now, now, now))
        return result

    def _forward(self, request: DeliveryRequest, recipient: RecipientRef, addresses: list[str]) -> str:
        """Queue a copy of ``request`` for ``addresses`` (alias forwarding); its queue id."""
        new_qid = self.store.new_queue_id()
        writer = self.store.content_writer(new_qid)
        try:
            writer.write(request.content)
            env = Envelope(sender=request.sender, arrival_time=self.clock(),
                           recipients=[Recipient(a, original=recipient.address) for a in addresses],
                           client_name="localhost", client_addr="127.0.0.1", protocol="local",
                           size=len(request.content), params=dict(request.params))
            self.store.commit(new_qid, env, writer)
        except BaseException:
            writer.abort()
            raise
        return new_qid

    def _defer_here(self, message, active_time: float, reason: str, dsn: str = "4.4.1") -> None:
        """Defer every pending recipient without a delivery agent (logged by qmgr)."""
        try:
            content = self.store.read_content(message.queue_id)
        except Exception:
            content = b""
        request = self._request(message, content, active_time)
        self._finish(message, self._no_agent(request, DEFERRED, dsn, reason), content)

    def _finish(self, message, result: DeliveryResult, content: bytes) -> None:
        """Record the attempt: bounce what failed or expired, schedule the rest."""
        qid, env = message.queue_id, message.envelope
        deferred: list[int] = []
        try:
            now = self.clock()
            delivered, bounced = result.indexes(SENT), result.indexes(BOUNCED)
            deferred = result.indexes(DEFERRED)
            outcomes = result.outcomes
            lifetime = self.config["maximal_queue_lifetime" if env.sender else "bounce_queue_lifetime"]
            # soft_bounce: what would expire stays queued too (bounce_flush() refuses).
            if deferred and now >= env.arrival_time + lifetime and not self.config["soft_bounce"]:
                log.info("%s: from=<%s>, status=expired, returned to sender", qid, env.sender)
                METER.inc("qmgr_messages_expired")
                bounced, deferred = sorted(bounced + deferred), []
            if bounced and env.sender and not self._return_to_sender(message, bounced, outcomes, content):
                deferred, bounced = sorted(deferred + bounced), []   # no DSN queued: keep trying
            next_attempt = now + self._backoff(env.arrival_time, now) if deferred else None
            self.store.record_results(qid, delivered, bounced, deferred, outcomes, next_attempt)
            fire_delivery_results(self.hooks, qid, env.sender, [r.address for r in env.recipients],
                                  delivered, deferred, bounced, outcomes)
            if not deferred:
                log.info("%s: removed", qid)
                METER.inc("qmgr_messages_removed")
        finally:
            self._in_flight.discard(qid)
            if deferred:
                self.wake()   # the scheduler may need to shorten its sleep

    def _backoff(self, arrival_time: float, now: float) -> float:
        low, high = self.config["minimal_backoff_time"], self.config["maximal_backoff_time"]
        return min(max(now - arrival_time, low), high)

    def _return_to_sender(self, message, bounced: list[int], outcomes: dict[int, Outcome],
                          content: bytes) -> bool:
        """Queue one DSN for ``bounced`` to the sender; False if it could not be queued."""
        env = message.envelope
        recipients = [dataclasses.replace(r, outcome=outcomes.get(i, r.outcome))
                      for i, r in enumerate(env.recipients)]
        failed = dataclasses.replace(message, envelope=dataclasses.replace(env, recipients=recipients))
        new_qid = self.store.new_queue_id()
        writer = self.store.content_writer(new_qid)
        try:
            # Inside the try: a DSN that cannot be built must not cost the
            # results of this attempt (the delivered recipients among them).
            data = build_dsn(failed, bounced, content, myhostname=self.config["myhostname"],
                             reason_kind=FAILED)
            writer.write(data)
            dsn_env = Envelope(sender="", recipients=[Recipient(env.sender)], arrival_time=self.clock(),
                               client_name="localhost", client_addr="127.0.0.1", protocol="local",
                               size=len(data))
            self.store.commit(new_qid, dsn_env, writer)
        except Exception:
            log.exception("%s: cannot queue the non-delivery notification", message.queue_id)
            writer.abort()
            return False
        bounce_log.info("%s: sender non-delivery notification: %s", message.queue_id, new_qid)
        METER.inc("bounce_non_delivery_notification")
        return True


class _Attempt:
    """The shares of one message's delivery attempt still running, and their outcomes."""

    def __init__(self, shares: int) -> None:
        self.pending = shares
        self.result = DeliveryResult()


def _error_text(text: str, default: str = "5.0.0") -> tuple[str, str, str]:
    """error(8)'s next hop "5.1.1 text": (status, dsn, text); default 5.0.0."""
    dsn, rest = split_status(text)
    if dsn[:1] not in ("4", "5"):
        dsn, rest = default, text
    return (DEFERRED if same_class(dsn, 4) else BOUNCED), dsn, rest or "delivery failed"

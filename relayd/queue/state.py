"""The queue as views in memory, changed only by applying journal records.

The same ``apply_*`` methods serve replay at start and live operations, so
what the store shows while running is exactly what a restart rebuilds from
the journal. A message lives in the views until its last recipient is
delivered or bounced, or it is deleted.

Besides the views, the state tracks where each live message's newest
MESSAGE record sits (its "home" segment) so that the store knows which
segments still matter: a segment is deleted once no live message calls it
home and every older segment is gone (see docs/queue-format.md).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from relayd.queue import records
from relayd.queue.envelope import BOUNCED, DEFERRED, DELIVERED, Envelope, PENDING

INCOMING, ACTIVE, DEFERRED_Q, HOLD, CORRUPT = "incoming", "active", "deferred", "hold", "corrupt"


@dataclass
class QueuedMessage:
    """A message in the queue, as mailq would list it."""

    queue_id: str
    envelope: Envelope
    state: str        # "incoming" | "active" | "deferred" | "hold" | "corrupt"
    attempts: int = 0
    next_attempt: float = 0.0
    last_reason: str = ""

    def pending_recipients(self) -> list[int]:
        """Indexes of recipients still to deliver (pending or deferred)."""
        return [i for i, r in enumerate(self.envelope.recipients) if r.status in (PENDING, DEFERRED)]


@dataclass
class Location:
    """Where a message's newest MESSAGE record and its content are."""

    segment: int
    record_size: int                 # framed size, counts toward the segment's live bytes
    content_offset: int = -1         # file offset of inline content in the segment, -1 for a data file
    content_size: int = 0


@dataclass
class QueueState:
    """The views (by queue id) and the segment bookkeeping."""

    messages: dict[str, QueuedMessage] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)
    segment_live: dict[int, dict[str, int]] = field(default_factory=dict)  # segment -> {qid: size}
    # The scheduling index, so that finding due mail never scans the whole queue:
    # messages that became incoming, in order, and deferred ones by next attempt.
    # Entries go stale when a message changes state; take_due() skips those.
    ready: dict[str, None] = field(default_factory=dict)
    waiting: list[tuple[float, str]] = field(default_factory=list)

    def schedule(self, msg: QueuedMessage) -> None:
        """Index ``msg`` for take_due() according to its state."""
        if msg.state == INCOMING:
            self.ready[msg.queue_id] = None
        elif msg.state == DEFERRED_Q:
            heapq.heappush(self.waiting, (msg.next_attempt, msg.queue_id))

    def take_due(self, now: float) -> list[QueuedMessage]:
        """Incoming messages in arrival order, then deferred ones whose next
        attempt has come; each is handed out once (the caller activates it)."""
        due = []
        ready, self.ready = self.ready, {}
        for qid in ready:
            msg = self.messages.get(qid)
            if msg is not None and msg.state == INCOMING:
                due.append(msg)
        waiting = self.waiting
        while waiting and waiting[0][0] <= now:
            when, qid = heapq.heappop(waiting)
            msg = self.messages.get(qid)
            if msg is not None and msg.state == DEFERRED_Q and msg.next_attempt == when:
                due.append(msg)
        return due

    def next_due(self) -> float | None:
        """When the earliest deferred message is due (None: nothing waits)."""
        waiting = self.waiting
        while waiting:
            when, qid = waiting[0]
            msg = self.messages.get(qid)
            if msg is not None and msg.state == DEFERRED_Q and msg.next_attempt == when:
                return when
            heapq.heappop(waiting)
        return None

    # -- records -> views -------------------------------------------------------------------

    def apply_message(self, msg: QueuedMessage, where: Location) -> None:
        """A MESSAGE record: a new message, or a snapshot that replaces the old copy."""
        self.messages[msg.queue_id] = msg
        self.move_home(msg.queue_id, where)
        self.schedule(msg)

    def apply_done(self, rec: records.DoneRecord) -> bool:
        """RECIPIENT_DONE; True when this finished the message (it left the views)."""
        msg = self.messages.get(rec.queue_id)
        if msg is None or msg.state == CORRUPT:
            return False
        status = DELIVERED if rec.status == "delivered" else BOUNCED
        for index, outcome in rec.outcomes:
            if index < len(msg.envelope.recipients):
                msg.envelope.recipients[index].status = status
                msg.envelope.recipients[index].outcome = outcome
        if msg.pending_recipients():
            return False
        del self.messages[rec.queue_id]
        return True

    def apply_deferred(self, rec: records.DeferredRecord) -> bool:
        """DEFERRED: one more attempt made; the message waits until ``next_attempt``."""
        msg = self.messages.get(rec.queue_id)
        if msg is None or msg.state == CORRUPT:
            return False
        for index, outcome in rec.outcomes:
            if index < len(msg.envelope.recipients):
                msg.envelope.recipients[index].status = DEFERRED
                msg.envelope.recipients[index].outcome = outcome
        msg.attempts += 1
        msg.next_attempt = rec.next_attempt
        if rec.outcomes:
            first = rec.outcomes[0][1]
            msg.last_reason = "" if first is None else str(first)
        if msg.state != HOLD:
            msg.state = DEFERRED_Q
            self.schedule(msg)
        return True

    def apply_op(self, kind: int, queue_id: str) -> bool:
        """HOLD, RELEASE, DELETE or REQUEUE; False when it does not apply to the message's state."""
        msg = self.messages.get(queue_id)
        if msg is None:
            return False
        if kind == records.DELETE:
            del self.messages[queue_id]
        elif kind == records.HOLD and msg.state in (INCOMING, ACTIVE, DEFERRED_Q):
            msg.state = HOLD
        elif kind == records.RELEASE and msg.state == HOLD:
            # Like postsuper -H: back where it would be had it never been held.
            msg.state = DEFERRED_Q if msg.attempts else INCOMING
        elif kind == records.REQUEUE and msg.state in (INCOMING, DEFERRED_Q):
            msg.state, msg.next_attempt = INCOMING, 0.0
        else:
            return False
        self.schedule(msg)
        return True

    # -- segment bookkeeping ----------------------------------------------------------------

    def move_home(self, queue_id: str, where: Location) -> None:
        """Record that ``queue_id``'s newest MESSAGE record is at ``where``."""
        self.forget_home(queue_id)
        self.locations[queue_id] = where
        self.segment_live.setdefault(where.segment, {})[queue_id] = where.record_size

    def forget_home(self, queue_id: str) -> Location | None:
        """Stop counting a finished message against its segment; its old location."""
        old = self.locations.pop(queue_id, None)
        if old is not None:
            live = self.segment_live.get(old.segment)
            if live is not None:
                live.pop(queue_id, None)
        return old

    def live_in(self, segment: int) -> dict[str, int]:
        """Live messages at home in ``segment`` with their record sizes."""
        return self.segment_live.get(segment, {})

    def views(self, state: str | None = None) -> list[QueuedMessage]:
        """Messages in ``state`` (all when None), oldest arrival first."""
        found = [m for m in self.messages.values() if state is None or m.state == state]
        found.sort(key=lambda m: m.envelope.arrival_time)
        return found

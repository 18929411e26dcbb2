"""The gauges of a relay's state, read when a snapshot is taken: sessions
open, the queue (postfix_exporter's showq shapes), the delivery connections.

The queue is walked at most every QUEUE_EVERY seconds, and less often the
longer it is (one walk per 5,000 messages a second), so that a large
backlog does not cost a large share of the event loop.
"""
from __future__ import annotations

import time

from relayd.queue.state import ACTIVE, DEFERRED_Q, HOLD, INCOMING

QUEUES = (INCOMING, ACTIVE, DEFERRED_Q, HOLD)
QUEUE_EVERY = 1.0
QUEUE_MAX_EVERY = 10.0
_PER_SECOND = 5000


class RelayGauges:
    """A :class:`relayd.metrics.meter.Meter` source for one relay."""

    def __init__(self, relay):
        self.relay = relay
        self._queue: list = []
        self._walked = -QUEUE_MAX_EVERY

    def __call__(self):
        sessions: dict[str, int] = {}
        for listener in self.relay.listeners:
            service = listener.service
            sessions[service.name] = sessions.get(service.name, 0) + len(service.sessions)
        for name, count in sessions.items():
            yield "smtpd_sessions", (name,), count
        for qmgr in self.relay.qmgrs:
            for destination, count in qmgr.pool.running().items():
                yield "smtp_connections", (destination, "busy"), count
            for nexthop, count in qmgr.agent.cache.idle().items():
                yield "smtp_connections", (nexthop, "idle"), count
        yield from self._queue_gauges()

    def _queue_gauges(self) -> list:
        now = time.monotonic()
        size = sum(store.count() for store in self.relay.stores)
        every = min(QUEUE_MAX_EVERY, max(QUEUE_EVERY, size / _PER_SECOND))
        if now - self._walked >= every:
            self._walked = now
            self._queue = _walk(self.relay.stores, time.time())
        return self._queue


def _walk(stores, now: float) -> list:
    sizes: dict[str, list[int]] = {q: [] for q in QUEUES}
    ages: dict[str, list[float]] = {q: [] for q in QUEUES}
    for store in stores:
        for message in store.unordered():
            if message.state in sizes:
                sizes[message.state].append(message.envelope.size)
                ages[message.state].append(max(0.0, now - message.envelope.arrival_time))
    out = []
    for queue in QUEUES:
        out += [("showq_queue_depth", (queue,), len(sizes[queue])),
                ("queue_bytes", (queue,), sum(sizes[queue])),
                ("queue_oldest_message_age_seconds", (queue,), max(ages[queue], default=0.0)),
                ("showq_message_size_bytes", (queue,), sizes[queue]),
                ("showq_message_age_seconds", (queue,), ages[queue])]
    return out

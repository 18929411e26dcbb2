"""An observer of the ``queued`` hook: one mail-log line per queued message.

    relayd/example[4242]: 4F3A21C0B2: queued from=<alice@example.org>, nrcpt=2, count=17

``count`` is the number of messages this process queued since it started.
"""
from __future__ import annotations

from relayd.plugin import QueuedEvent, get_logger

log = get_logger("example")


class QueuedCounter:
    """Counts the ``queued`` events it receives and logs each one."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: QueuedEvent) -> None:
        self.count += 1
        log.info("%s: queued from=<%s>, nrcpt=%d, count=%d", event.queue_id, event.sender,
                 len(event.recipients), self.count)

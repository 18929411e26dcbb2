"""Queue ids: uppercase hexadecimal, like Postfix's short ids, unique across restarts.

An id is a 48-bit counter printed as 12 hex digits. The counter starts from
the clock in units of 1/65536 s, and never below an id already seen in the
journal, so ids grow with time and a restart does not hand out an id again
(unless more than 65,536 ids a second were used before a restart whose
messages have all left the queue, which the clock alone cannot rule out).
The last hex digit is the generator's ``stripe`` (the worker process number
modulo 16), so worker processes committing at the same moment never hand
out the same id.
"""
from __future__ import annotations

import time

_TICKS_PER_SECOND = 1 << 16
_WIDTH = 12


class QueueIdGenerator:
    """Hands out queue ids; :meth:`observe` every id found at start."""

    def __init__(self, stripe: int = 0) -> None:
        self._last = 0
        self.stripe = stripe % 16

    def observe(self, queue_id: str) -> None:
        """Never hand out ``queue_id`` or anything below it."""
        try:
            self._last = max(self._last, int(queue_id, 16))
        except ValueError:
            pass

    def next(self) -> str:
        """A fresh queue id."""
        base = max((self._last >> 4) + 1, int(time.time() * _TICKS_PER_SECOND) >> 4)
        self._last = (base << 4) | self.stripe
        return f"{self._last:0{_WIDTH}X}"

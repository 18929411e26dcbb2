"""Session deadlines enforced by one sweeper greenlet per process.

Arming a gevent Timeout around every socket call was the most expensive
Python-side cost measured on the hot path (DESIGN.md, "Deadlines"). Instead
each session carries a plain ``deadline`` number it moves forward when the
client makes progress, and this sweeper, waking once a second, interrupts
the sessions whose deadline has passed.
"""
from __future__ import annotations

import gevent


class SessionTimeout(Exception):
    """Raised inside a session greenlet whose deadline passed."""


class DeadlineSweeper:
    """Interrupts watched sessions once ``session.deadline`` (hub loop time) passes.

    A watched object needs ``deadline`` (a float; ``float("inf")`` to pause)
    and ``greenlet``.
    """

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._sessions: set = set()
        self._greenlet = None
        self.loop = gevent.get_hub().loop

    def now(self) -> float:
        """The hub's cached loop time: as cheap as reading an attribute."""
        return self.loop.now()

    def watch(self, session) -> None:
        self._sessions.add(session)
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._sweep)

    def unwatch(self, session) -> None:
        self._sessions.discard(session)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _sweep(self) -> None:
        while True:
            gevent.sleep(self.interval)
            now = self.loop.now()
            for session in [s for s in self._sessions if s.deadline < now]:
                self._sessions.discard(session)
                session.greenlet.kill(SessionTimeout, block=False)

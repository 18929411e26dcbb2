"""Per-destination delivery limits: qmgr(8)'s ``_destination_`` knobs.

For a transport T (a master.cf service name, e.g. smtp or relay) the queue
manager reads ``T_destination_concurrency_limit``,
``T_destination_rate_delay`` and ``T_destination_recipient_limit``; each
defaults to its ``default_destination_*`` parameter, except Postfix's own
defaults for ``local`` (concurrency 2, recipient limit 1). As in qmgr:

- a *destination* is the next hop (a domain, or ``[host]:port``), or the
  recipient itself when the recipient limit is 1;
- the concurrency limit bounds parallel deliveries to one destination
  (0: no limit but the process limit);
- the recipient limit bounds the recipients of one delivery: a message with
  more recipients for one destination is delivered in several parts
  (0: no limit);
- a rate delay puts at least that much time between deliveries to one
  destination, and with it the destination's concurrency is 1.

Worker processes. Each relayd worker runs its own queue manager, so the
concurrency limit is divided among them: each worker may open
``ceil(limit / workers)`` parallel deliveries to a destination (at least
1), and the node at most ``workers * ceil(limit / workers)``, which is the
limit itself when it divides evenly (a limit below the worker count
becomes 1 per worker). The rate delay is not divided: the time of a
destination's next delivery is kept in anvil's table of shared memory
(:meth:`relayd.anvil.Anvil.delivery_slot`), so deliveries to one
destination start at least the delay apart whichever worker makes them
(two may overlap only when one lasts longer than the delay).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from relayd.config import ConfigError
from relayd.params import PARAMS
from relayd.paramtypes import BadValue, convert

__all__ = ["DestinationLimits", "TransportLimits", "RateGate"]

_SUFFIXES = {"concurrency": "destination_concurrency_limit",
             "rate_delay": "destination_rate_delay",
             "recipient_limit": "destination_recipient_limit"}


@dataclass(frozen=True)
class DestinationLimits:
    """One transport's limits in one worker: ``concurrency`` (parallel
    deliveries per destination, at least 1), ``rate_delay`` (seconds),
    ``recipient_limit`` (0: no limit) and ``per_recipient`` (the destination
    is a recipient)."""

    concurrency: int
    rate_delay: float
    recipient_limit: int

    @property
    def per_recipient(self) -> bool:
        return self.recipient_limit == 1


class TransportLimits:
    """The limits of each transport of ``config`` for one of ``workers``
    worker processes; ``process_limit`` stands in for "no limit"."""

    def __init__(self, config, workers: int = 1, process_limit: int = 100) -> None:
        self._config, self._workers, self._process_limit = config, max(1, workers), process_limit
        self._by_transport: dict[str, DestinationLimits] = {}
        for service in config.services:   # a bad value stops startup, not a delivery
            if service.type == "unix":
                self.of(service.name)

    def of(self, transport: str) -> DestinationLimits:
        """The limits of ``transport`` (ConfigError for a bad value)."""
        limits = self._by_transport.get(transport)
        if limits is None:
            values = {field: self._value(transport, suffix) for field, suffix in _SUFFIXES.items()}
            concurrency = values["concurrency"] or self._process_limit
            if values["rate_delay"] > 0:
                concurrency = 1
            limits = self._by_transport[transport] = DestinationLimits(
                max(1, math.ceil(concurrency / self._workers)), values["rate_delay"],
                max(0, values["recipient_limit"]))
        return limits

    def _value(self, transport: str, suffix: str):
        """``<transport>_<suffix>`` as main.cf (or Postfix's default for it)
        sets it, else ``default_<suffix>``; typed as ``default_<suffix>``."""
        default = PARAMS[f"default_{suffix}"]
        name = f"{transport}_{suffix}"
        try:
            text = self._config.expand(self._config.raw(name))
        except KeyError:   # a transport Postfix has no default for, not set in main.cf
            return self._config[default.name]
        try:
            return convert(default, text)
        except BadValue as exc:
            raise ConfigError(str(exc), parameter=name) from None


class RateGate:
    """Spaces deliveries to one destination ``delay`` seconds apart: across
    the worker processes of a node through ``anvil``'s shared table, else
    within this process."""

    def __init__(self, anvil=None) -> None:
        self._anvil = anvil
        self._next: dict[str, float] = {}

    def wait(self, destination: str, delay: float) -> float:
        """Claim the destination's next delivery; the seconds to wait before it starts."""
        return self._slot(destination, delay, finished=False)

    def finished(self, destination: str, delay: float) -> None:
        """A delivery ended: the next one starts ``delay`` from now at the earliest."""
        self._slot(destination, delay, finished=True)

    def _slot(self, destination: str, delay: float, *, finished: bool) -> float:
        if self._anvil is not None:
            return self._anvil.delivery_slot(destination, delay, finished=finished)
        now = time.monotonic()
        start = max(now, self._next.get(destination, 0.0))
        self._next[destination] = max(start, now + delay) if finished else start + delay
        if len(self._next) > 10000:   # bounded: forget destinations whose delay has passed
            self._next = {k: v for k, v in self._next.items() if v > now}
        return 0.0 if finished else start - now

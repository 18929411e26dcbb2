"""Lifecycle hooks: plugins observe what happens to mail; they never decide it.

A plugin's ``register(registry)`` may call ``registry.add_hook(name, func)``
for one of :data:`HOOK_NAMES`. relayd then calls ``func(event)`` with the
frozen event value of that hook each time it happens:

* ``connect`` (:class:`ConnectEvent`): the session driver accepted a client.
* ``data-end`` (:class:`DataEndEvent`): the client ended DATA; the reply is decided.
* ``queued`` (:class:`QueuedEvent`): the message is durably queued, 250 is next.
* ``delivered`` / ``deferred`` / ``bounced`` (:class:`DeliveryEvent`): the
  queue manager recorded one recipient's outcome of a delivery attempt.

Hooks are fire-and-forget: each call runs in a greenlet of its own, under its
timeout, so a slow observer never delays a client or a delivery; an exception
is logged with its traceback and goes no further. Nothing a hook returns is
used. That is the difference from a check: a check decides, a hook watches.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import gevent
from gevent.pool import Group

from relayd.config import ConfigError
from relayd.pipeline.context import SessionView
from relayd.smtp.replies import Reply

log = logging.getLogger("relayd.master")

HOOK_CONNECT = "connect"
HOOK_DATA_END = "data-end"
HOOK_QUEUED = "queued"
HOOK_DELIVERED = "delivered"
HOOK_DEFERRED = "deferred"
HOOK_BOUNCED = "bounced"
HOOK_NAMES = (HOOK_CONNECT, HOOK_DATA_END, HOOK_QUEUED, HOOK_DELIVERED, HOOK_DEFERRED,
              HOOK_BOUNCED)

#: How long one hook call may run before it is stopped (seconds), unless its
#: plugin registered another limit.
DEFAULT_HOOK_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    """A client connected to the smtpd service ``service`` (master.cf name)."""

    session: SessionView
    service: str = "smtp"


@dataclass(frozen=True, slots=True)
class DataEndEvent:
    """The client ended DATA; ``reply`` is what it is told (250 queued, or a
    refusal). ``queue_id`` is "" when none was assigned. ``notes`` is the
    session's notes dict, as the checks left it."""

    session: SessionView
    queue_id: str
    sender: str
    recipients: tuple[str, ...]
    size: int
    reply: Reply
    notes: Mapping = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """A message is on disk under ``queue_id``: the client's 250 is about to go out."""

    session: SessionView
    queue_id: str
    sender: str
    recipients: tuple[str, ...]
    size: int
    message_id: str = ""
    notes: Mapping = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One recipient's outcome of a delivery attempt (``delivered``,
    ``deferred`` or ``bounced``). ``reply`` is the reason as the queue records
    it: the enhanced status code, then the text ("2.0.0 ... 250 2.0.0 Ok ...")."""

    queue_id: str
    sender: str
    recipient: str
    reply: str


EVENT_TYPES = {
    HOOK_CONNECT: ConnectEvent, HOOK_DATA_END: DataEndEvent, HOOK_QUEUED: QueuedEvent,
    HOOK_DELIVERED: DeliveryEvent, HOOK_DEFERRED: DeliveryEvent, HOOK_BOUNCED: DeliveryEvent,
}


@dataclass(frozen=True, slots=True)
class HookSpec:
    """A registered observer: ``func(event)``, stopped after ``timeout`` seconds."""

    name: str
    func: Callable
    timeout: float | None = DEFAULT_HOOK_TIMEOUT
    plugin: str = ""


class HookRegistry:
    """The observers of each lifecycle hook.

    A mixin for :class:`relayd.pipeline.registry.CheckRegistry` (it keeps its
    table lazily, so it needs no ``__init__``): the registry a plugin's
    ``register`` receives offers both ``add`` and ``add_hook``. Set
    ``run_hooks_inline`` to call hooks in the firing greenlet, one after the
    other (the test harness does, so a test sees their effect at once).
    """

    run_hooks_inline = False

    def add_hook(self, name: str, func: Callable, *,
                 timeout: float | None = DEFAULT_HOOK_TIMEOUT) -> None:
        """Call ``func(event)`` each time the lifecycle event ``name`` happens."""
        if name not in EVENT_TYPES:
            raise ConfigError(f"plugin {self._plugin_label() or '?'}: unknown hook {name!r} "
                              f"(known: {', '.join(HOOK_NAMES)})")
        spec = HookSpec(name, func, timeout, self._plugin_label())
        self._hook_table().setdefault(name, []).append(spec)

    def hooks(self, name: str) -> tuple[HookSpec, ...]:
        """The observers of hook ``name``, in registration order."""
        return tuple(self._hook_table().get(name, ()))

    def fire(self, name: str, event) -> None:
        """Hand ``event`` to every observer of ``name``; never raises for a hook's fault."""
        specs = self._hook_table().get(name)
        if not specs:
            return  # the usual case costs one dict lookup
        if not isinstance(event, EVENT_TYPES[name]):
            raise TypeError(f"hook {name} takes a {EVENT_TYPES[name].__name__}, not {event!r}")
        for spec in specs:
            if self.run_hooks_inline:
                _call(spec, event)
            else:
                self._hook_group().spawn(_call, spec, event)

    def retain_hooks(self, plugins: set[str]) -> None:
        """Keep only the hooks registered by ``plugins`` (plugin labels)."""
        table = self._hook_table()
        for name in list(table):
            table[name] = [spec for spec in table[name] if spec.plugin in plugins]
            if not table[name]:
                del table[name]

    def wait_hooks(self, timeout: float | None = None) -> bool:
        """Wait until the hook calls running now are done; False on timeout."""
        return self._hook_group().join(timeout)

    # The table lives in the instance's __dict__, created on first use.
    def _hook_table(self) -> dict[str, list[HookSpec]]:
        table = self.__dict__.get("_hooks")
        if table is None:
            table = self.__dict__["_hooks"] = {}
        return table

    def _hook_group(self) -> Group:
        group = self.__dict__.get("_hook_greenlets")
        if group is None:
            group = self.__dict__["_hook_greenlets"] = Group()
        return group

    def _plugin_label(self) -> str:
        # CheckRegistry.load_plugin sets this while a plugin's register() runs.
        return getattr(self, "_current_plugin", "")


def fire_delivery_results(hooks: HookRegistry, queue_id: str, sender: str,
                          recipients: Iterable[str], delivered: Iterable[int],
                          deferred: Iterable[int], bounced: Iterable[int],
                          outcomes: Mapping[int, object]) -> None:
    """Fire delivered/deferred/bounced for one attempt, as the queue manager
    records it: ``recipients`` are the envelope addresses, the index lists
    say which ended how, ``outcomes`` gives each index's recorded outcome
    (a :class:`relayd.queue.outcome.Outcome`; its text is the event's reply)."""
    if not (hooks.hooks(HOOK_DELIVERED) or hooks.hooks(HOOK_DEFERRED) or hooks.hooks(HOOK_BOUNCED)):
        return  # the common case: nobody listens, and this runs for every message
    addresses = list(recipients)
    for name, indexes in ((HOOK_DELIVERED, delivered), (HOOK_DEFERRED, deferred),
                          (HOOK_BOUNCED, bounced)):
        for i in indexes:
            hooks.fire(name, DeliveryEvent(queue_id, sender, addresses[i], str(outcomes.get(i, ""))))


def _call(spec: HookSpec, event) -> None:
    """One observer call: a timeout or an exception is logged, never raised."""
    timer = gevent.Timeout(spec.timeout) if spec.timeout else None
    if timer is not None:
        timer.start()
    try:
        spec.func(event)
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        log.warning("%s: %s hook timed out after %ss", spec.plugin or spec.func, spec.name,
                    spec.timeout)
    except Exception:
        log.exception("%s: %s hook failed", spec.plugin or spec.func, spec.name)
    finally:
        if timer is not None:
            timer.close()


__all__ = ["HOOK_NAMES", "HOOK_CONNECT", "HOOK_DATA_END", "HOOK_QUEUED", "HOOK_DELIVERED",
           "HOOK_DEFERRED", "HOOK_BOUNCED", "ConnectEvent", "DataEndEvent", "QueuedEvent",
           "DeliveryEvent", "HookRegistry", "HookSpec", "fire_delivery_results"]

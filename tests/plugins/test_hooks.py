"""Lifecycle hooks: registration, fire-and-forget calls, failures that stay in the log."""
import logging

import gevent
import pytest

from relayd.config import ConfigError
from relayd.pipeline.context import SessionView
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT, Outcome
from relayd.pipeline.hooks import (HOOK_BOUNCED, HOOK_CONNECT, HOOK_DEFERRED, HOOK_DELIVERED,
                                   HOOK_NAMES, HOOK_QUEUED, ConnectEvent, DeliveryEvent,
                                   HookRegistry, QueuedEvent, fire_delivery_results)

CLIENT = SessionView("192.0.2.1", "client.example")
QUEUED = QueuedEvent(CLIENT, "4F3A21C0B2", "alice@example.org", ("bob@relay.example",), 312)


class Registry(HookRegistry):
    """As CheckRegistry.load_plugin does, names the plugin being registered."""

    def load(self, label, register):
        self._current_plugin = label
        register(self)
        self._current_plugin = ""


def test_the_hook_names_are_the_lifecycle_events():
    assert HOOK_NAMES == ("connect", "data-end", "queued", "delivered", "deferred", "bounced")


def test_an_unknown_hook_name_stops_startup_naming_the_plugin():
    registry = Registry()
    with pytest.raises(ConfigError, match="acme_plugin:register: unknown hook 'queue'"):
        registry.load("acme_plugin:register", lambda r: r.add_hook("queue", print))


def test_a_failing_hook_is_logged_with_its_traceback_and_the_others_still_run(caplog):
    seen = []
    registry = Registry()
    registry.run_hooks_inline = True
    registry.load("broken:register", lambda r: r.add_hook(HOOK_QUEUED, lambda e: 1 / 0))
    registry.load("counter:register", lambda r: r.add_hook(HOOK_QUEUED, seen.append))
    registry.fire(HOOK_QUEUED, QUEUED)  # does not raise
    assert seen == [QUEUED]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "broken:register: queued hook failed"
    assert "ZeroDivisionError" in caplog.text


def test_hooks_run_in_their_own_greenlets_and_do_not_delay_the_caller():
    done = []
    registry = Registry()
    registry.load("slow:register",
                  lambda r: r.add_hook(HOOK_CONNECT, lambda e: (gevent.sleep(0.05), done.append(e))))
    registry.fire(HOOK_CONNECT, ConnectEvent(CLIENT))
    assert done == []  # fire() returned before the hook ran
    assert registry.wait_hooks(timeout=5)
    assert done == [ConnectEvent(CLIENT)]


def test_a_hook_past_its_timeout_is_stopped_and_logged(caplog):
    finished = []
    registry = Registry()
    registry.run_hooks_inline = True
    registry.load("stuck:register", lambda r: r.add_hook(
        HOOK_CONNECT, lambda e: (gevent.sleep(30), finished.append(e)), timeout=0.05))
    registry.fire(HOOK_CONNECT, ConnectEvent(CLIENT))
    assert finished == []
    assert "stuck:register: connect hook timed out after 0.05s" in caplog.text


def test_firing_with_the_wrong_event_type_is_a_caller_bug():
    registry = Registry()
    registry.add_hook(HOOK_QUEUED, print)
    with pytest.raises(TypeError, match="QueuedEvent"):
        registry.fire(HOOK_QUEUED, ConnectEvent(CLIENT))


def test_events_are_frozen():
    with pytest.raises(AttributeError):
        QUEUED.queue_id = "X"


def test_delivery_results_give_one_event_per_recipient_under_its_outcome():
    got = {name: [] for name in (HOOK_DELIVERED, HOOK_DEFERRED, HOOK_BOUNCED)}
    registry = Registry()
    registry.run_hooks_inline = True
    for name, events in got.items():
        registry.add_hook(name, events.append)
    fire_delivery_results(registry, "4F3A21C0B2", "alice@example.org",
                          ["a@relay.example", "b@relay.example", "c@relay.example"],
                          delivered=[0], deferred=[2], bounced=[1],
                          outcomes={0: Outcome(SENT, "2.0.0", "sent"),
                                    1: Outcome(BOUNCED, "5.1.1", "unknown"),
                                    2: Outcome(DEFERRED, "4.4.1", "no route")})
    assert got == {
        HOOK_DELIVERED: [DeliveryEvent("4F3A21C0B2", "alice@example.org", "a@relay.example",
                                       "2.0.0 sent")],
        HOOK_BOUNCED: [DeliveryEvent("4F3A21C0B2", "alice@example.org", "b@relay.example",
                                     "5.1.1 unknown")],
        HOOK_DEFERRED: [DeliveryEvent("4F3A21C0B2", "alice@example.org", "c@relay.example",
                                      "4.4.1 no route")],
    }

"""Where restriction names come from: plugins registered by entry points.

Every element a restriction list may name is a check registered under that
name by a plugin of the ``relayd.plugins`` entry-point group. An entry
point is a ``register(registry)`` function; relayd's own checks register
exactly the same way (see setup.py). An installed plugin that no list names
stays inert.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable

from relayd.config import ConfigError
from relayd.pipeline.hooks import HookRegistry

log = logging.getLogger("relayd.master")

ENTRY_POINT_GROUP = "relayd.plugins"

# The built-in plugins, also declared as entry points in setup.py; listed here
# so that relayd runs from a source tree that was never pip-installed.
BUILTIN_PLUGINS = (
    "relayd.checks.relay:register",
    "relayd.checks.access:register",
    "relayd.checks.syntax:register",
    "relayd.checks.modifiers:register",
    "relayd.checks.reserved:register",
    "relayd.checks.recipients:register",
    "relayd.checks.sender_login:register",
    "relayd.checks.clientcerts:register",
    "relayd.checks.dnsbl:register",
)


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """A registered check: ``func(context) -> Verdict``.

    ``nargs`` is how many words after its name in main.cf belong to it;
    ``timeout`` (seconds) is set for checks that wait on something outside
    the process (DNS, a database); pure checks run inline without one.
    ``setup(args, config)``, when given, runs once when a list naming the
    check is compiled (at startup): it opens tables and raises ConfigError
    for bad arguments, so that a mistake stops startup, not the first RCPT.
    """

    name: str
    func: Callable
    nargs: int = 0
    timeout: float | None = None
    plugin: str = ""
    setup: Callable | None = None


class CheckRegistry(HookRegistry):
    """The names a restriction list may use, and the checks behind them;
    as a :class:`HookRegistry` also the plugins' lifecycle hooks."""

    def __init__(self) -> None:
        self._checks: dict[str, CheckSpec] = {}
        self._reserved: dict[str, str] = {}
        self._current_plugin = ""
        self.plugin_names: dict[str, str] = {}  # plugin label -> its entry-point name

    def add(self, name: str, func: Callable, *, nargs: int = 0,
            timeout: float | None = None, setup: Callable | None = None) -> None:
        """Register ``func`` as the check called ``name`` in restriction lists."""
        name = name.lower()
        if name in self._checks and self._checks[name].plugin != self._current_plugin:
            raise ConfigError(f"restriction {name} is registered twice: by "
                              f"{self._checks[name].plugin} and by {self._current_plugin}")
        self._checks[name] = CheckSpec(name, func, nargs, timeout, self._current_plugin, setup)

    def reserve(self, name: str, reason: str) -> None:
        """Mark ``name`` as a Postfix restriction relayd does not provide yet;
        naming it in a list stops startup with ``reason``. A plugin that
        registers the name (before or after) wins over the reservation."""
        self._reserved.setdefault(name.lower(), reason)

    def reserved(self, name: str) -> str | None:
        """Why ``name`` cannot be used yet, or None."""
        name = name.lower()
        return None if name in self._checks else self._reserved.get(name)

    def get(self, name: str) -> CheckSpec | None:
        """The check registered as ``name`` (any case), or None."""
        return self._checks.get(name.lower())

    def names(self) -> list[str]:
        """The names of all registered checks, sorted."""
        return sorted(self._checks)

    def load_plugin(self, label: str, register: Callable[["CheckRegistry"], None]) -> None:
        """Run one plugin's ``register`` function, attributing its checks to ``label``."""
        self._current_plugin = label
        try:
            register(self)
        finally:
            self._current_plugin = ""

    @classmethod
    def from_entry_points(cls) -> "CheckRegistry":
        """A registry holding every installed plugin's checks.

        A plugin that fails to import stops startup with an error naming it.
        """
        registry = cls()
        seen = set()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            seen.add(ep.value)
            registry.plugin_names[ep.value] = ep.name
            try:
                register = ep.load()
            except Exception as exc:
                raise ConfigError(f"plugin {ep.name} ({ep.value}) failed to load: {exc!r}") from exc
            registry.load_plugin(ep.value, register)
        for target in BUILTIN_PLUGINS:
            if target not in seen:
                module, _, attr = target.partition(":")
                registry.load_plugin(target, getattr(importlib.import_module(module), attr))
        return registry

"""The plugin API: everything a relayd plugin needs, from one stable module.

A plugin imports from here, never from relayd's internal modules, which may
move between releases::

    from relayd.plugin import DUNNO, CheckContext, Reject, Reply, require_api

    R554_NO_THANKS = Reply(554, "5.7.1", "<{}>: Sender address rejected: No thanks")

    def reject_example_org(ctx: CheckContext):
        if (ctx.sender or "").lower().endswith("@example.org"):
            return Reject(R554_NO_THANKS.format(ctx.sender))
        return DUNNO

    def register(registry):              # the relayd.plugins entry point
        require_api("1.0")
        registry.add("reject_example_org", reject_example_org)

Versioning (:data:`API_VERSION`, "MAJOR.MINOR"): an additive change (a new
name here, a new field in a context or event value, a new hook) bumps MINOR;
a change that can break a working plugin (a name removed or changed in
meaning) bumps MAJOR. A plugin calls :func:`require_api` with the version it
was written against, and relayd refuses to start with it when MAJOR differs
or MINOR is lower, instead of failing on the first message.
"""
from __future__ import annotations

import logging

from relayd.config import ConfigError
from relayd.pipeline.context import (NAME_FORGED, NAME_OK, NAME_PERM, NAME_TEMP, CheckContext,
                                     SessionView)
from relayd.pipeline.hooks import (
    DEFAULT_HOOK_TIMEOUT, HOOK_BOUNCED, HOOK_CONNECT, HOOK_DATA_END, HOOK_DEFERRED,
    HOOK_DELIVERED, HOOK_NAMES, HOOK_QUEUED, ConnectEvent, DataEndEvent, DeliveryEvent,
    QueuedEvent)
from relayd.pipeline.verdicts import DUNNO, OK, Defer, Dunno, Permit, Reject, Verdict
from relayd.smtp.replies import Reply
from relayd.tables.base import LookupConfigError, TemporaryLookupError, open_table

API_VERSION = "1.2"


def require_api(version: str) -> None:
    """Stop startup (ConfigError) unless this relayd offers plugin API ``version``.

    Call it first thing in ``register``; "1.0" is satisfied by 1.0, 1.1, ...
    but not by 2.0.
    """
    want = _parse(version)
    have = _parse(API_VERSION)
    if want[0] != have[0] or want[1] > have[1]:
        raise ConfigError(f"a plugin needs relayd plugin API {version}; "
                          f"this relayd offers {API_VERSION}")


def get_logger(plugin: str) -> logging.Logger:
    """The logger a plugin writes the mail log through (``relayd/<plugin>[pid]: ...``).

    relayd's log handler serves the ``relayd`` logger tree only, so a logger
    named otherwise would never reach the mail log.
    """
    return logging.getLogger(f"relayd.{plugin}")


def _parse(version: str) -> tuple[int, int]:
    try:
        major, minor = version.split(".")
        return int(major), int(minor)
    except ValueError:
        raise ConfigError(f"bad plugin API version {version!r}: expected MAJOR.MINOR") from None


__all__ = [
    "API_VERSION", "require_api", "get_logger",
    # what a check receives and returns
    "CheckContext", "SessionView", "Verdict", "OK", "DUNNO", "Permit", "Dunno", "Reject",
    "Defer", "Reply",
    # how the client's name was found (SessionView.client_name_status, ...)
    "NAME_OK", "NAME_TEMP", "NAME_PERM", "NAME_FORGED",
    # failures a check may raise, and tables it may open
    "ConfigError", "TemporaryLookupError", "LookupConfigError", "open_table",
    # lifecycle hooks
    "HOOK_NAMES", "HOOK_CONNECT", "HOOK_DATA_END", "HOOK_QUEUED", "HOOK_DELIVERED",
    "HOOK_DEFERRED", "HOOK_BOUNCED", "DEFAULT_HOOK_TIMEOUT", "ConnectEvent", "DataEndEvent",
    "QueuedEvent", "DeliveryEvent",
]

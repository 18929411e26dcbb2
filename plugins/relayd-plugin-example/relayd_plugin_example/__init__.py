"""relayd-plugin-example: ``reject_sender_tld`` and a queued-message counter.

The entry point (pyproject.toml, group ``relayd.plugins``) is :func:`register`.
"""
from __future__ import annotations

from relayd.plugin import HOOK_QUEUED, require_api

from relayd_plugin_example.counter import QueuedCounter
from relayd_plugin_example.tld import R554_SENDER_TLD, RejectSenderTld, read_tld_file

__version__ = "1.0.0"


def register(registry) -> None:
    """Add ``reject_sender_tld FILE`` and the ``queued`` observer to ``registry``."""
    require_api("1.0")
    # Fresh instances per registry: each relayd configuration gets its own state.
    check = RejectSenderTld()
    registry.add("reject_sender_tld", check, nargs=1, setup=check.setup)
    registry.add_hook(HOOK_QUEUED, QueuedCounter())


__all__ = ["register", "RejectSenderTld", "QueuedCounter", "R554_SENDER_TLD", "read_tld_file"]

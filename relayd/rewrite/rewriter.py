"""The address rewriting cleanup(8) does before a message is queued.

Envelope sender: canonical maps and masquerading. Envelope recipients:
canonical maps, masquerading, then virtual alias expansion; duplicates
that expansion produces are dropped (Postfix's duplicate filter). Bare
names are first qualified with ``@$myorigin``.
"""
from __future__ import annotations

from relayd.queue.envelope import Recipient
from relayd.rewrite.canonical import Canonical
from relayd.rewrite.maps import qualify
from relayd.rewrite.virtual import VirtualAliases


class Rewriter:
    """Address rewriting for one configuration; tables are opened once, here,
    so a bad table stops startup (ConfigError) instead of failing a message."""

    def __init__(self, config):
        self.canonical = Canonical(config)
        self.virtual = VirtualAliases(config)
        self.myorigin = config["myorigin"].lower()

    def sender(self, address: str) -> str:
        """The envelope sender as queued ("" stays ""); TemporaryLookupError
        when a table cannot answer now."""
        if not address:
            return address
        return self.canonical.sender(qualify(address, self.myorigin))

    def recipients(self, addresses: list[str]) -> list[Recipient]:
        """The envelope recipients as queued, each with ``original`` set to
        the address the client gave; TemporaryLookupError (including
        :class:`relayd.rewrite.canonical.AliasExpansionError`) when the
        message must not be accepted now."""
        out: list[Recipient] = []
        seen: set[str] = set()
        for given in addresses:
            canonical = self.canonical.recipient(qualify(given, self.myorigin))
            for address in self.virtual.expand(canonical):
                if address.lower() not in seen:
                    seen.add(address.lower())
                    out.append(Recipient(address, original=given))
        return out

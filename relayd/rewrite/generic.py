"""smtp_generic_maps: addresses rewritten on their way out by the SMTP client.

A host whose mail leaves with addresses that are only valid inside the LAN
(``bob@localdomain.local``, bare ``bob``) maps them to valid Internet
addresses (``bob@example.com``). One lookup per address in virtual(5)
order, the first result used, as Postfix's smtp_map11.c does; the null
sender is never rewritten. An unmatched extension propagates only when
``propagate_unmatched_extensions`` names ``generic``.
"""
from __future__ import annotations

import logging

from relayd.rewrite.maps import AddressMaps

log = logging.getLogger("relayd.smtp")


class GenericMaps:
    """The smtp_generic_maps of one configuration."""

    def __init__(self, config):
        self.maps = AddressMaps(config, "smtp_generic_maps")
        self.propagate = "generic" in config["propagate_unmatched_extensions"]

    def __bool__(self) -> bool:
        return bool(self.maps)

    def rewrite(self, address: str) -> str:
        """``address`` as the next hop should see it (TemporaryLookupError passes)."""
        if not self.maps or not address:
            return address
        results = self.maps.map(address, self.propagate)
        if results is None:
            return address
        if len(results) > 1:
            log.warning("%s: multi-valued result for %s: %s; using the first",
                        self.maps.parameter, address, ", ".join(results))
        return results[0]

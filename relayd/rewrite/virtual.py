"""virtual(5) alias expansion of envelope recipients (cleanup_map1n.c).

Each address is looked up in ``virtual_alias_maps``; a result (one or more
comma-separated addresses) replaces it and is looked up again, until no
table knows the address. An address that maps to itself (``a@x  a@x,
b@x``) is kept and not expanded again; any other loop runs into
``virtual_alias_recursion_limit``. More than
``virtual_alias_expansion_limit`` addresses, or a loop, refuse the message
for now (:class:`AliasExpansionError`), as Postfix does.
"""
from __future__ import annotations

import logging

from relayd.rewrite.canonical import AliasExpansionError
from relayd.rewrite.maps import AddressMaps
from relayd.rewrite.tables import warn_virtual_maps

log = logging.getLogger("relayd.cleanup")


class VirtualAliases:
    """The virtual_alias_maps of one configuration."""

    def __init__(self, config):
        warn_virtual_maps(config)
        self.maps = AddressMaps(config, "virtual_alias_maps")
        self.propagate = "virtual" in config["propagate_unmatched_extensions"]
        self.expansion_limit = config["virtual_alias_expansion_limit"]
        self.recursion_limit = config["virtual_alias_recursion_limit"]

    def __bool__(self) -> bool:
        return bool(self.maps)

    def expand(self, address: str) -> list[str]:
        """The final recipients ``address`` expands to (itself when no table knows it)."""
        if not self.maps:
            return [address]
        out = [address]
        settled: set[str] = set()   # addresses that expanded into themselves
        i = 0
        while i < len(out):
            if len(out) > self.expansion_limit:
                self._refuse("unreasonable virtual_alias_maps map expansion size", address)
            for count in range(self.recursion_limit + 1):
                current = out[i]
                if current.lower() in settled:
                    break
                if count == self.recursion_limit:
                    self._refuse("unreasonable virtual_alias_maps map nesting", address)
                results = self.maps.map(current, self.propagate)
                if results is None:
                    break
                out[i:i + 1] = results[:1]
                out.extend(results[1:])
                if any(r.lower() == current.lower() for r in results):
                    settled.add(current.lower())
            i += 1
        return out

    @staticmethod
    def _refuse(what: str, address: str) -> None:
        log.warning("%s for %s -- message not accepted, try again later", what, address)
        raise AliasExpansionError("4.6.0 Alias expansion error")


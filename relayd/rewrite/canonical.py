"""canonical(5) mapping and address masquerading, as cleanup(8) does them.

For an envelope sender: ``sender_canonical_maps``, then ``canonical_maps``,
then masquerading; for an envelope recipient: ``recipient_canonical_maps``,
then ``canonical_maps`` (masquerading only when ``masquerade_classes``
names envelope_recipient). Each map applies only to the address classes its
``*_classes`` parameter names (src/cleanup/cleanup_addr.c). A canonical
result is one address; the mapping repeats on its result until it stops
changing, at most 100 times (cleanup_map11.c).
"""
from __future__ import annotations

import logging

from relayd.addresses import split_address
from relayd.rewrite.maps import AddressMaps
from relayd.tables.base import TemporaryLookupError

log = logging.getLogger("relayd.cleanup")

ENVELOPE_SENDER, ENVELOPE_RECIPIENT = "envelope_sender", "envelope_recipient"
HEADER_SENDER, HEADER_RECIPIENT = "header_sender", "header_recipient"

# cleanup_map11.c: MAX_RECURSION.
CANONICAL_RECURSION_LIMIT = 100


class AliasExpansionError(TemporaryLookupError):
    """A mapping would not settle (a loop, or past a limit): Postfix's cleanup
    answers "4.6.0 Alias expansion error" and keeps nothing; try again later."""


class CanonicalMaps:
    """One canonical parameter and the address classes it applies to."""

    def __init__(self, config, parameter: str, classes_parameter: str):
        self.maps = AddressMaps(config, parameter)
        self.classes = set(config[classes_parameter])
        self.propagate = "canonical" in config["propagate_unmatched_extensions"]

    def rewrite(self, address: str, address_class: str) -> str:
        """``address`` mapped until it stops changing (cleanup_map11())."""
        if not self.maps or address_class not in self.classes:
            return address
        for _ in range(CANONICAL_RECURSION_LIMIT):
            results = self.maps.map(address, self.propagate)
            if results is None:
                return address
            if len(results) > 1:
                log.warning("%s: multi-valued result for %s: %s; using the first",
                            self.maps.parameter, address, ", ".join(results))
            if results[0].lower() == address.lower():
                return results[0]
            address = results[0]
        log.warning("unreasonable %s map nesting for %s -- message not accepted, "
                    "try again later", self.maps.parameter, address)
        raise AliasExpansionError("4.6.0 Alias expansion error")


class Masquerade:
    """masquerade_domains with masquerade_exceptions and masquerade_classes."""

    def __init__(self, config):
        self.domains = config["masquerade_domains"]
        self.exceptions = {w.lower() for w in config["masquerade_exceptions"]}
        self.classes = set(config["masquerade_classes"])

    def rewrite(self, address: str, address_class: str) -> str:
        """``user@host.sub.example.com`` -> ``user@example.com`` when
        example.com is listed; ``!name`` protects a domain; the first
        listed domain the address is in decides (cleanup_masquerade.c)."""
        if not self.domains or address_class not in self.classes:
            return address
        localpart, domain = split_address(address)
        if not domain or localpart.lower() in self.exceptions:
            return address
        domain = domain.lower()
        for item in self.domains:
            truncate = (len(item) - len(item.lstrip("!"))) % 2 == 0
            masq = item.lstrip("!").lower()
            if not masq:
                continue
            if masq == domain:
                return address
            if domain.endswith("." + masq):
                return f"{localpart}@{masq}" if truncate else address
        return address


class Canonical:
    """Everything cleanup does to one address before virtual aliasing."""

    def __init__(self, config):
        self.sender_maps = CanonicalMaps(config, "sender_canonical_maps", "sender_canonical_classes")
        self.recipient_maps = CanonicalMaps(config, "recipient_canonical_maps",
                                            "recipient_canonical_classes")
        self.common_maps = CanonicalMaps(config, "canonical_maps", "canonical_classes")
        self.masquerade = Masquerade(config)
        #: False when no canonical map or masquerade domain is configured.
        self.rewrites_anything = bool(self.sender_maps.maps or self.recipient_maps.maps
                                      or self.common_maps.maps or self.masquerade.domains)

    def sender(self, address: str, address_class: str = ENVELOPE_SENDER) -> str:
        """A sender address after sender/common canonical maps and masquerading."""
        if not self.rewrites_anything:
            return address
        address = self.sender_maps.rewrite(address, address_class)
        address = self.common_maps.rewrite(address, address_class)
        return self.masquerade.rewrite(address, address_class)

    def recipient(self, address: str, address_class: str = ENVELOPE_RECIPIENT) -> str:
        """A recipient address after recipient/common canonical maps and masquerading."""
        if not self.rewrites_anything:
            return address
        address = self.recipient_maps.rewrite(address, address_class)
        address = self.common_maps.rewrite(address, address_class)
        return self.masquerade.rewrite(address, address_class)

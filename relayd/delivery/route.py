"""Where a recipient goes next: its transport and next-hop destination.

:class:`Router` resolves a recipient as trivial-rewrite(8) does: by the
class of its domain (relayd.domains) it takes ``local_transport`` (local
domains), ``virtual_transport`` (virtual_mailbox_domains),
``relay_transport`` (relay_domains) or ``default_transport``; a recipient
in relocated_maps, or an unexpanded one in a virtual alias domain, goes to
the ``error`` transport. A transport is written ``name:nexthop``; ``name``
is a master.cf service whose command says what it is (smtp, lmtp, local,
error, discard), or one of those well-known names itself (``relay`` is
smtp). An smtp transport without a next hop uses ``relayhost``.

A next hop is written as Postfix accepts it: ``[host]:port``, ``[host]``,
``host:port`` or ``host`` (port: a number or a service name, default
"smtp" = 25). Brackets mean "no MX lookup" in Postfix; MX delivery is not
implemented yet, so both forms connect to the host itself.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

from relayd.domains import DEFAULT, LOCAL, RELAY, VIRTUAL_ALIAS, VIRTUAL_MAILBOX, AddressClasses
from relayd.rewrite.maps import AddressMaps

__all__ = ["Destination", "Router", "Transport", "parse_nexthop", "transport_kind"]

# What a transport is, by the command of its master.cf service.
SMTP, LOCAL_AGENT, ERROR, DISCARD = "smtp", "local", "error", "discard"
_KINDS = {"smtp": SMTP, "lmtp": SMTP, "relay": SMTP, "local": LOCAL_AGENT, "error": ERROR,
          "discard": DISCARD}

_TRANSPORT_PARAMETERS = {LOCAL: "local_transport", VIRTUAL_MAILBOX: "virtual_transport",
                         RELAY: "relay_transport", DEFAULT: "default_transport"}


@dataclass(frozen=True)
class Transport:
    """A resolved transport: ``kind`` (smtp, local, error, discard, or None
    when relayd has no such transport), ``name`` as written and ``nexthop``
    (for error and discard: the text)."""
    kind: str | None
    name: str
    nexthop: str


def transport_kind(config, name: str) -> str | None:
    """What transport ``name`` is: its master.cf service's command, else the name."""
    for service in config.services:
        if service.name == name and service.type == "unix":
            return _KINDS.get(service.command)
    return _KINDS.get(name)


class Router:
    """Resolves recipients to transports for one configuration."""

    def __init__(self, config):
        self.config = config
        self.classes = AddressClasses.of(config)
        self.relocated = AddressMaps(config, "relocated_maps")
        self.relayhost = config["relayhost"]
        self._by_class: dict[str, Transport] = {}  # the transport depends on the class only

    def resolve(self, address: str) -> Transport:
        """The transport for ``address`` (TemporaryLookupError when relocated_maps cannot answer)."""
        resolved = self.classes.resolve(address)
        moved = (self.relocated.find(f"{resolved.localpart}@{resolved.domain}")
                 if self.relocated else None)
        if moved is not None:
            return Transport(ERROR, "error", f"5.1.6 User has moved to {moved[0]}")
        kind = self.classes.classify(resolved.domain)
        if kind == VIRTUAL_ALIAS:
            return Transport(ERROR, "error", "5.1.1 User unknown in virtual alias table")
        transport = self._by_class.get(kind)
        if transport is None:
            transport = self._by_class[kind] = self._transport(kind)
        return transport

    def _transport(self, kind: str) -> Transport:
        parameter = _TRANSPORT_PARAMETERS.get(kind, "default_transport")
        name, _, nexthop = self.config[parameter].partition(":")
        transport = Transport(transport_kind(self.config, name), name, nexthop)
        if transport.kind == SMTP and not nexthop:
            transport = Transport(SMTP, name, self.relayhost)
        return transport


@dataclass(frozen=True)
class Destination:
    """A next hop: ``nexthop`` as written in main.cf (the key for the
    connection cache and the per-destination concurrency limit)."""
    nexthop: str
    host: str
    port: int
    mx_lookup: bool


def parse_nexthop(nexthop: str) -> Destination:
    """Parse a relayhost value; ValueError when it is malformed."""
    text = nexthop.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not host:
            raise ValueError(f"bad next-hop {nexthop!r}: unbalanced brackets")
        mx_lookup = False
    else:
        # More than one colon: an IPv6 address without brackets, no port.
        host, rest = (text[:text.index(":")], text[text.index(":"):]) if text.count(":") == 1 else (text, "")
        mx_lookup = True
    if rest and not rest.startswith(":"):
        raise ValueError(f"bad next-hop {nexthop!r}")
    port = _port(rest[1:] or "smtp", nexthop)
    if not host:
        raise ValueError(f"bad next-hop {nexthop!r}: no host")
    return Destination(text, host, port, mx_lookup)


def _port(service: str, nexthop: str) -> int:
    if service.isdigit():
        port = int(service)
    else:
        try:
            port = socket.getservbyname(service, "tcp")
        except OSError:
            raise ValueError(f"bad next-hop {nexthop!r}: unknown service {service!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad next-hop {nexthop!r}: port out of range")
    return port

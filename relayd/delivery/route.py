"""Where a message goes next: the next-hop destination.

For now only ``relayhost`` routes mail, written as Postfix accepts it:
``[host]:port``, ``[host]``, ``host:port`` or ``host`` (port: a number or a
service name, default "smtp" = 25). Brackets mean "no MX lookup" in Postfix;
MX delivery is not implemented yet, so both forms connect to the host itself.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

__all__ = ["Destination", "parse_nexthop"]


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

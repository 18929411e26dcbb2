"""Envelope addresses as a mail router sees them.

Relay control must judge an address by where the next hop would really send
it, not by how it looks. :func:`route` undoes the classic tricks (quoted
local parts, source routes, the percent hack, bang paths, trailing dots,
case, IP literals) the way Postfix's trivial-rewrite resolves them, and says
whether the address still carries sender-specified routing.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    """Where an address goes: its ``domain`` (lower case, no trailing dot;
    "" for a bare local part) and whether it still holds sender-specified
    routing (``routed``: a source route, or ``@``, ``%`` or ``!`` left in
    the local part), which no relay may pass on for an outside client."""

    localpart: str
    domain: str
    routed: bool


def split_address(address: str) -> tuple[str, str]:
    """Split at the last ``@`` that is not inside a quoted local part."""
    if '"' not in address:
        localpart, at, domain = address.rpartition("@")
        return (localpart, domain) if at else (address, "")
    in_quotes = False
    split_at = -1
    i = 0
    while i < len(address):
        c = address[i]
        if c == "\\" and in_quotes:
            i += 2
            continue
        if c == '"':
            in_quotes = not in_quotes
        elif c == "@" and not in_quotes:
            split_at = i
        i += 1
    if split_at < 0:
        return address, ""
    return address[:split_at], address[split_at + 1:]


def unquote_localpart(localpart: str) -> str:
    """``"a@b"`` -> ``a@b``: the local part as the next hop would read it."""
    if '"' not in localpart and "\\" not in localpart:
        return localpart
    out = []
    i = 0
    while i < len(localpart):
        c = localpart[i]
        if c == "\\" and i + 1 < len(localpart):
            out.append(localpart[i + 1])
            i += 2
            continue
        if c != '"':
            out.append(c)
        i += 1
    return "".join(out)


def normalize_domain(domain: str) -> str:
    """Lower case without trailing dots: ``Example.COM.`` -> ``example.com``."""
    return domain.rstrip(".").lower()


def route(address: str, local_domains=None) -> Route:
    """Resolve ``address`` as a router would.

    ``local_domains(domain) -> bool`` tells which domains are this host's
    own (mydestination): for those, Postfix's percent hack
    (``user%other@local`` -> ``user@other``) and bang-path swapping
    (``other!user@local`` -> ``user@other``) apply and resolution goes on
    with the new address, as allow_percent_hack and swap_bangpath (both on
    by default) do.
    """
    routed = False
    if address.startswith("@"):
        # RFC 5321 source route "@a,@b:user@dom": the relay would forward to "a".
        routed = True
        address = address.partition(":")[2]
    for _ in range(10):
        localpart, domain = split_address(address)
        localpart = unquote_localpart(localpart)
        domain = normalize_domain(domain)
        if domain and local_domains is not None and local_domains(domain):
            if "%" in localpart and "@" not in localpart:
                user, _, other = localpart.rpartition("%")
                address = f"{user}@{other}"
                continue
            if "!" in localpart and "@" not in localpart:
                other, _, user = localpart.partition("!")
                address = f"{user}@{other}"
                continue
        if any(c in localpart for c in "@%!"):
            routed = True
        return Route(localpart, domain, routed)
    return Route(localpart, domain, True)

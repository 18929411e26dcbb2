"""Search orders: which keys a lookup tries, one layer above the tables.

A table answers only the key it is given (:mod:`relayd.tables.base`). The
access(5) search orders are built here as lists of :class:`Query` values:
the first query is the whole string ("full"); the derived ones (parent
domains, ``user@``, shortened addresses) are "partial" and go only to
fixed tables, never to pattern tables (regexp, pcre, static...), which see
the whole string once (Postfix's DICT_FLAG_FIXED, src/global/maps.c).
:meth:`relayd.tables.maps.Maps.search` puts them to a list of tables.
Case folding is each table's business (``Table.fold``), so keys are built
from the string as given.
"""
from __future__ import annotations

import ipaddress
from typing import NamedTuple

# Local parts Postfix never splits at the recipient delimiter (split_addr.c).
_UNSPLIT = ("postmaster", "mailer-daemon")


class Query(NamedTuple):
    """One key to look up; ``partial`` keys skip pattern tables."""

    key: str
    partial: bool


def strip_extension(localpart: str, delimiters: str, *, double_bounce: str = "double-bounce",
                    owner_request_special: bool = True) -> str | None:
    """``user+ext`` -> ``user`` (Postfix split_addr_internal), None if not split.

    Any character of ``delimiters`` ends the user name; postmaster,
    MAILER-DAEMON, the double-bounce sender and (with ``-`` as a delimiter)
    owner-foo / foo-request are never split, nor a split that leaves no user.
    """
    if not delimiters:
        return None
    lower = localpart.lower()
    if lower in _UNSPLIT or lower == double_bounce.lower():
        return None
    if "-" in delimiters and owner_request_special:
        if lower.startswith("owner-") or (len(lower) > 8 and lower.endswith("-request")):
            return None
    for i, c in enumerate(localpart):
        if c in delimiters:
            return localpart[:i] if i > 0 else None
    return None


def parent_domains(domain: str, *, parent_matches_subdomains: bool) -> list[str]:
    """The names after ``domain`` in a domain walk, top-level domain included.

    With ``parent_matches_subdomains`` (smtpd_access_maps named in
    parent_domain_matches_subdomains, the default): ``example.com``, ``com``;
    without: ``.example.com``, ``.com``.
    """
    parents = []
    name = domain
    while (dot := name.find(".", 1)) > 0:
        name = name[dot + 1:] if parent_matches_subdomains else name[dot:]
        if not name:
            break
        parents.append(name)
    return parents


def address_queries(address: str, *, delimiters: str = "",
                    parent_matches_subdomains: bool = True) -> list[Query]:
    """access(5) order for an e-mail address (mail_addr_find_strategy with
    FULL|NOEXT|DOMAIN|LOCALPART_AT|PDMS or PDDMDS):

    ``user+ext@sub.example.com``, ``user@sub.example.com``,
    ``sub.example.com``, ``example.com``, ``com``, ``user+ext@``, ``user@``.
    """
    localpart, at, domain = address.rpartition("@")
    if not at:
        return [Query(address, False)]
    queries = [Query(address, False)]
    bare = strip_extension(localpart, delimiters)
    if bare is not None:
        queries.append(Query(f"{bare}@{domain}", True))
    if domain:
        queries.append(Query(domain, True))
        queries += [Query(p, True) for p in
                    parent_domains(domain, parent_matches_subdomains=parent_matches_subdomains)]
    queries.append(Query(f"{localpart}@", True))
    if bare is not None:
        queries.append(Query(f"{bare}@", True))
    return queries


def hostname_queries(name: str, *, parent_matches_subdomains: bool = True) -> list[Query]:
    """access(5) order for a host name: the name, then its parent domains.

    A trailing dot is dropped; a numeric name (an address) gets no walk.
    """
    name = name[:-1] if name.endswith(".") and not name.endswith("..") else name
    queries = [Query(name, False)]
    if is_host_address(name):
        return queries
    return queries + [Query(p, True) for p in
                      parent_domains(name, parent_matches_subdomains=parent_matches_subdomains)]


def hostaddr_queries(address: str) -> list[Query]:
    """access(5) order for a client address: ``1.2.3.4``, ``1.2.3``, ``1.2``,
    ``1``; IPv6 by cutting the compressed form at its last ``:`` each time
    (``2001:db8::1``, ``2001:db8:``, ``2001:db8``, ``2001``)."""
    delimiter = ":" if ":" in address else "."
    queries = [Query(address, False)]
    rest = address
    while delimiter in rest:
        rest = rest[:rest.rindex(delimiter)]
        if rest:
            queries.append(Query(rest, True))
    return queries


def host_queries(name: str, address: str, *, parent_matches_subdomains: bool = True) -> list[Query]:
    """check_client_access order: the host name walk, then the address walk.

    Both walks start with a full query, so a pattern table sees the name
    and then the address (check_namadr_access in smtpd_check.c).
    """
    return (hostname_queries(name, parent_matches_subdomains=parent_matches_subdomains)
            + hostaddr_queries(address))


def is_host_address(text: str) -> bool:
    """Is ``text`` an IPv4/IPv6 address (optionally in [brackets])?"""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

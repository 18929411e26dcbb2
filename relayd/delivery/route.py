"""Where a recipient goes next: its transport and next-hop destination.

:class:`Router` resolves a recipient as trivial-rewrite(8) does
(src/trivial-rewrite/resolve.c, transport.c):

1. By the class of its domain (relayd.domains): ``local_transport`` (local
   domains), ``virtual_transport`` (virtual_mailbox_domains),
   ``relay_transport`` (relay_domains) or ``default_transport`` (else; or
   sender_dependent_default_transport_maps' value for the sender). The next
   hop is the recipient domain; for the relay and default classes
   sender_dependent_relayhost_maps' value for the sender overrides it
   (``DUNNO``: the recipient domain), else ``relayhost`` does. A
   ``transport:nexthop`` value of the class's parameter overrides both.
2. transport_maps (transport(5)), searched ``user+ext@domain``,
   ``user@domain``, ``domain``, then each parent domain (``.parent``, or
   ``parent`` when transport_maps is in parent_domain_matches_subdomains),
   then ``*``. A result ``transport:nexthop`` replaces both; ``transport:``
   sets the transport with the recipient domain as next hop (for error:
   "Address is undeliverable"); ``:nexthop`` keeps the transport; ``:``
   changes nothing.
3. A recipient in relocated_maps goes to the ``error`` transport ("User has
   moved to ..."), whatever the above said; an unexpanded recipient of a
   virtual alias domain too ("User unknown in virtual alias table").

A table that cannot answer gives the ``retry`` transport with Postfix's
"4.3.0 address resolver failure": the recipient is deferred, never routed
elsewhere. With none of the tables above configured and a relayhost set,
the transport depends on the class alone and is computed once per class.

A transport is written ``name:nexthop``; ``name`` is a master.cf service
whose command says what it is (smtp, lmtp, local, error, discard), or one
of those well-known names itself (``relay`` is smtp, ``retry`` is error(8)
deferring instead of bouncing).

A next hop is written as Postfix accepts it: ``[host]:port``, ``[host]``,
``host:port`` or ``host`` (port: a number or a service name, default
"smtp" = 25). Brackets mean "no MX lookup": the host itself is the server.
Without them the smtp transport looks up the MX hosts of the name
(relayd.delivery.mx), so ``example.test:2525`` is delivered to the MX hosts
of example.test on port 2525.
"""
from __future__ import annotations

import dataclasses
import logging
import socket
from dataclasses import dataclass
from functools import lru_cache

from relayd.domains import DEFAULT, LOCAL, RELAY, VIRTUAL_ALIAS, VIRTUAL_MAILBOX, AddressClasses
from relayd.rewrite.maps import AddressMaps
from relayd.rewrite.tables import open_tables
from relayd.tables.base import TemporaryLookupError
from relayd.tables.maps import Maps
from relayd.tables.search import parent_domains, strip_extension

__all__ = ["Destination", "Router", "Transport", "parse_nexthop", "transport_kind"]

log = logging.getLogger("relayd.trivial-rewrite")

# What a transport is, by the command of its master.cf service.
SMTP, LOCAL_AGENT, ERROR, RETRY, DISCARD = "smtp", "local", "error", "retry", "discard"
_KINDS = {"smtp": SMTP, "lmtp": SMTP, "relay": SMTP, "local": LOCAL_AGENT, "error": ERROR,
          "retry": RETRY, "discard": DISCARD}

_TRANSPORT_PARAMETERS = {LOCAL: "local_transport", VIRTUAL_MAILBOX: "virtual_transport",
                         RELAY: "relay_transport", DEFAULT: "default_transport"}
RESOLVER_FAILURE = "4.3.0 address resolver failure"


@dataclass(frozen=True)
class Transport:
    """A resolved transport: ``kind`` (smtp, local, error, retry, discard, or
    None when relayd has no such transport), ``name`` as written and
    ``nexthop`` (for error, retry and discard: the text)."""
    kind: str | None
    name: str
    nexthop: str


def transport_kind(config, name: str) -> str | None:
    """What transport ``name`` is: its master.cf service's command, else the name."""
    for service in config.services:
        if service.name == name and service.type == "unix":
            if service.command == "error" and name == "retry":
                return RETRY
            return _KINDS.get(service.command)
    return _KINDS.get(name)


class Router:
    """Resolves recipients to transports for one configuration."""

    def __init__(self, config):
        self.config = config
        self.classes = AddressClasses.of(config)
        self.relocated = AddressMaps(config, "relocated_maps")
        self.relayhost = config["relayhost"]
        self.transports = Maps("transport_maps", open_tables(config, "transport_maps"))
        self.sender_relayhosts = AddressMaps(config, "sender_dependent_relayhost_maps")
        self.sender_transports = AddressMaps(config, "sender_dependent_default_transport_maps")
        self._parent_style = "transport_maps" in config["parent_domain_matches_subdomains"]
        self._delimiters = config["recipient_delimiter"]
        self._null_relay_key = config["empty_address_relayhost_maps_lookup_key"]
        self._null_transport_key = config["empty_address_default_transport_maps_lookup_key"]
        self._kinds: dict[str, str | None] = {}
        self._by_class: dict[str, Transport] = {}  # the classes whose transport depends on nothing else

    def resolve(self, address: str, sender: str = "") -> Transport:
        """The transport for ``address``, sent by ``sender``."""
        resolved = self.classes.resolve(address)
        try:
            if self.relocated:
                moved = _ask("relocated_maps", self.relocated.find,
                             f"{resolved.localpart}@{resolved.domain}")
                if moved is not None:
                    return Transport(ERROR, "error", f"5.1.6 User has moved to {moved[0]}")
            kind = self.classes.classify(resolved.domain)
            if kind == VIRTUAL_ALIAS:
                return Transport(ERROR, "error", "5.1.1 User unknown in virtual alias table")
            transport = self._by_class.get(kind) or self._class_transport(kind, resolved.domain,
                                                                           sender)
            if self.transports:
                transport = _ask("transport_maps", self._transport_maps,
                                 f"{resolved.localpart}@{resolved.domain}", resolved.domain,
                                 transport)
        except TemporaryLookupError:
            return Transport(RETRY, "retry", RESOLVER_FAILURE)
        return transport

    def kind(self, name: str) -> str | None:
        """:func:`transport_kind` of ``name``, remembered."""
        if name not in self._kinds:
            self._kinds[name] = transport_kind(self.config, name)
        return self._kinds[name]

    def _class_transport(self, kind: str, domain: str, sender: str) -> Transport:
        """Step 1 of the module doc."""
        parameter = _TRANSPORT_PARAMETERS.get(kind, "default_transport")
        value = self.config[parameter]
        per_sender = kind in (RELAY, DEFAULT) and bool(self.sender_relayhosts)
        if kind == DEFAULT and self.sender_transports:
            per_sender = True
            value = self._per_sender(self.sender_transports,
                                     sender or self._null_transport_key) or value
            value = self.config[parameter] if value.upper() == "DUNNO" else value
        name, _, nexthop = value.partition(":")
        if not nexthop and kind in (RELAY, DEFAULT):
            relay = self._per_sender(self.sender_relayhosts, sender or self._null_relay_key)
            nexthop = (domain if relay.upper() == "DUNNO" else relay) if relay else self.relayhost
        transport = Transport(self.kind(name), name, nexthop or domain)
        # Cached when neither the sender nor the domain went into it.
        if not per_sender and (nexthop or "").strip():
            self._by_class[kind] = transport
        return transport

    @staticmethod
    def _per_sender(maps: AddressMaps, key: str) -> str:
        """A sender-dependent table's value for the sender ``key`` ("" when none)."""
        if not maps:
            return ""
        found = _ask(maps.parameter, maps.find, key)
        return found[0] if found else ""

    def _transport_maps(self, address: str, domain: str, transport: Transport) -> Transport:
        """Step 2 of the module doc (transport_lookup() and update_entry())."""
        localpart = address.rpartition("@")[0]
        queries = [(address, False)]
        bare = strip_extension(localpart, self._delimiters)
        if bare is not None:
            queries.append((f"{bare}@{domain}", True))
        queries.append((domain, True))
        queries += [(parent, True) for parent in
                    parent_domains(domain, parent_matches_subdomains=self._parent_style)]
        queries.append(("*", False))
        found = self.transports.search(queries)
        if found is None:
            return transport
        name, _, nexthop = found.value.partition(":")
        if not name:
            return dataclasses.replace(transport, nexthop=nexthop) if nexthop else transport
        if not nexthop:
            nexthop = "Address is undeliverable" if name == "error" else domain
        return Transport(self.kind(name), name, nexthop)


def _ask(parameter: str, lookup, *args):
    """``lookup(*args)``, with resolve.c's warning when a table cannot answer."""
    try:
        return lookup(*args)
    except TemporaryLookupError:
        log.warning("%s lookup failure", parameter)
        raise


@dataclass(frozen=True)
class Destination:
    """A next hop: ``nexthop`` as written (the key for the connection cache
    and the per-destination limits), its ``host`` and ``port`` and whether
    the host is a domain whose MX hosts are looked up (``mx_lookup``)."""
    nexthop: str
    host: str
    port: int
    mx_lookup: bool


@lru_cache(maxsize=4096)   # once per next hop, not once per message
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

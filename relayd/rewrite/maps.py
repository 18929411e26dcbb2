"""Address tables searched the virtual(5) / canonical(5) / relocated(5) way.

One :class:`AddressMaps` holds the tables of one parameter (e.g.
``virtual_alias_maps``) and searches them as Postfix's mail_addr_find()
does (src/global/mail_addr_find.c, mail_addr_map.c)::

    user+ext@domain, user@domain, user+ext, user, @domain

``user+ext`` and ``user`` only when the domain is local ($myorigin,
$mydestination, $inet_interfaces, $proxy_interfaces); the forms without
the extension only when ``recipient_delimiter`` is set and the address has
one. Each key goes through :class:`relayd.tables.maps.Maps` (maps_find):
to every table before the next key is tried, pattern tables only for the
full address, case folded by each table as its ``fold`` says.
"""
from __future__ import annotations

from relayd.addresses import split_address
from relayd.config import ConfigError
from relayd.domains import LocalDomains
from relayd.paramtypes import split_list
from relayd.rewrite.tables import open_tables
from relayd.tables.maps import Maps


def strip_extension(localpart: str, delimiters: str) -> tuple[str, str]:
    """``user+ext`` -> (``user``, ``+ext``): split at the first delimiter
    character (any of ``recipient_delimiter``); ("user", "") without one."""
    if not delimiters:
        return localpart, ""
    cut = min((i for i in (localpart.find(d) for d in delimiters) if i > 0), default=-1)
    if cut < 0:
        return localpart, ""
    return localpart[:cut], localpart[cut:]


def qualify(address: str, myorigin: str) -> str:
    """A bare ``user`` becomes ``user@$myorigin`` (Postfix's canonical form)."""
    _, domain = split_address(address)
    return address if domain or not myorigin else f"{address}@{myorigin}"


def with_extension(address: str, extension: str) -> str:
    """``user@domain`` + ``+ext`` -> ``user+ext@domain`` (propagation)."""
    if not extension:
        return address
    localpart, domain = split_address(address)
    return f"{localpart}{extension}@{domain}" if domain else localpart + extension


class AddressMaps:
    """The tables of one parameter, searched in virtual(5) order."""

    def __init__(self, config, parameter: str, specs: list[str] | None = None):
        self.parameter = parameter
        self.tables = Maps(parameter, open_tables(config, parameter, specs))
        self.local = LocalDomains.of(config)
        self.delimiters = config["recipient_delimiter"]
        self.myorigin = config["myorigin"].lower()
        self._any = bool(self.tables)   # asked several times per message

    def __bool__(self) -> bool:
        return self._any

    def find_key(self, key: str, *, partial: bool) -> str | None:
        """One key put to the tables (:meth:`relayd.tables.maps.Maps.find`)."""
        return self.tables.find(key, partial=partial)

    def find(self, address: str) -> tuple[str, str] | None:
        """The value for ``address`` and the unmatched extension ("" when
        the key that matched kept it), or None. TemporaryLookupError passes."""
        localpart, domain = split_address(address)
        bare, extension = strip_extension(localpart, self.delimiters)
        at = f"@{domain}" if domain else ""
        value = self.find_key(address, partial=False)
        if value is not None:
            return value, ""
        if extension and (value := self.find_key(bare + at, partial=True)) is not None:
            return value, extension
        if domain and (domain.lower() == self.myorigin or domain.lower() in self.local):
            if extension and (value := self.find_key(localpart, partial=True)) is not None:
                return value, ""
            if (value := self.find_key(bare, partial=True)) is not None:
                return value, extension
        if domain and (value := self.find_key(at, partial=True)) is not None:
            return value, ""
        return None

    def map(self, address: str, propagate: bool) -> list[str] | None:
        """mail_addr_map(): the addresses ``address`` maps to, or None.

        A result ``@otherdomain`` keeps the user (without its extension); an
        unmatched extension is put back on each result when ``propagate``;
        bare names get ``@$myorigin``.
        """
        found = self.find(address)
        if found is None:
            return None
        value, extension = found
        if value.startswith("@"):
            localpart, _ = split_address(address)
            bare = localpart[:len(localpart) - len(extension)] if extension else localpart
            value = bare + value
        results = [qualify(a, self.myorigin) for a in split_list(value)]
        if not results:
            raise ConfigError(f"lookup of {address} returns non-address result {value!r}",
                              parameter=self.parameter)
        return [with_extension(a, extension) for a in results] if propagate else results


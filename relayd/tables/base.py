"""One interface for every lookup table type.

``open_table("type:name", config)`` returns a :class:`Table`. Types are
found by their ``type:`` prefix in the ``relayd.tables`` entry-point group
(relayd's own types register there too, see setup.py) and imported only
when a configuration uses them, so a package can add ``redis:`` or
``ldap:``. A table answers :meth:`Table.lookup` with the value, ``None``
for "not found", or raises :class:`TemporaryLookupError` when its backend
cannot answer now (the caller then replies 4xx, never accepts or rejects).
Search orders (access(5), virtual(5)) live above the tables, in
:mod:`relayd.tables.search`; a table only answers the key it is given.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Iterator

from relayd.config import ConfigError

ENTRY_POINT_GROUP = "relayd.tables"

# relayd's own types, also declared as entry points in setup.py; listed here so
# that a source tree that was never pip-installed works too.
BUILTIN_TYPES = {
    "static": "relayd.tables.static:StaticTable",
    "inline": "relayd.tables.inline:InlineTable",
    "texthash": "relayd.tables.texthash:TextHashTable",
    "hash": "relayd.tables.hashdb:HashTable",
    "regexp": "relayd.tables.regexp:RegexpTable",
    "pcre": "relayd.tables.pcre:PcreTable",
    "cidr": "relayd.tables.cidr:CidrTable",
    "unix": "relayd.tables.unix:UnixTable",
}


class TemporaryLookupError(Exception):
    """The table's backend cannot answer now (database down, timeout): 4xx."""


class Table:
    """A lookup table. ``spec`` is the "type:name" text it was opened with.

    Subclasses implement :meth:`lookup`; file-based ones may also implement
    :meth:`iterate` (``postmap -s``) and :meth:`build` (``postmap``).
    ``fixed`` is False for pattern tables (regexp, pcre, cidr...), which get
    the whole search string once instead of the partial keys of a search
    order (Postfix's DICT_FLAG_PATTERN).
    """

    fixed = True

    def __init__(self, spec: str, name: str, config=None):
        self.spec = spec
        self.name = name
        self.config = config

    def lookup(self, key: str) -> str | None:
        raise NotImplementedError

    def iterate(self) -> Iterator[tuple[str, str]]:
        raise ConfigError(f"{self.spec}: this table type cannot be listed")

    def without_case_folding(self) -> "Table":
        """``postmap -f``: look keys up as given instead of in lower case.

        Only the types that fold keys (hash, texthash) change; pattern tables
        decide case by their own flags, as in Postfix, and return themselves."""
        return self

    def build(self) -> None:
        """Recompile this table from its source (``postmap type:name``)."""
        type(self).compile(self.spec, self.name, self.config)

    @classmethod
    def compile(cls, spec: str, name: str, config=None) -> int:
        """Build the compiled form of ``name`` from its source, without
        opening the table first (its compiled form may not exist yet);
        returns the number of entries written. Types with nothing to build
        (the text and pattern types read their source directly) refuse."""
        raise ConfigError(f"{spec}: this table type has nothing to build")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"


def split_spec(spec: str) -> tuple[str, str]:
    """``"hash:/etc/x"`` -> ``("hash", "/etc/x")``; an error without a type."""
    kind, sep, name = spec.partition(":")
    if not sep or not kind or not kind.replace("_", "").isalnum():
        raise ConfigError(f"{spec!r} is not a lookup table (expected type:name)")
    return kind.lower(), name


def table_class(kind: str) -> type[Table]:
    """The class implementing table type ``kind`` (imported on first use)."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == kind:
            try:
                return ep.load()
            except Exception as exc:
                raise ConfigError(f"lookup table type {kind}: {ep.value} failed to load: {exc!r}")
    target = BUILTIN_TYPES.get(kind)
    if target is None:
        raise ConfigError(f"unsupported dictionary type: {kind}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def open_table(spec: str, config=None) -> Table:
    """Open the table ``spec`` ("type:name"); ConfigError when it cannot be.

    With a *config*, ``$name`` forms in spec (``hash:$config_directory/access``)
    are expanded against it first.
    """
    spec = _expanded(spec, config)
    kind, name = split_spec(spec)
    return table_class(kind)(spec, name, config)


def compile_table(spec: str, config=None) -> int:
    """``postmap type:name``: build the table's compiled form from its source."""
    spec = _expanded(spec, config)
    kind, name = split_spec(spec)
    return table_class(kind).compile(spec, name, config)


def _expanded(spec: str, config) -> str:
    return config.expand(spec) if config is not None and "$" in spec else spec


class TableUnavailable(ConfigError):
    """The table cannot be opened now (its file or database is missing), as
    opposed to a table that is wrong (a bad line), which stops startup."""


class UnavailableTable(Table):
    """Stands in for a table that could not be opened (Postfix's dict_surrogate):
    every lookup is a temporary failure naming the cause, so mail that needs
    the table gets 4xx and nothing else is affected."""

    def __init__(self, spec: str, reason: str):
        super().__init__(spec, spec.partition(":")[2])
        self.reason = reason

    def lookup(self, key: str) -> str | None:
        raise TemporaryLookupError(f"{self.spec} is unavailable: {self.reason}")


def open_table_or_surrogate(spec: str, config=None, *, log=None) -> Table:
    """:func:`open_table`, but a table that is only unavailable (missing file)
    becomes an :class:`UnavailableTable` with a warning instead of an error."""
    try:
        return open_table(spec, config)
    except TableUnavailable as exc:
        if log is not None:
            log.warning("%s is unavailable: %s", spec, exc.message)
        return UnavailableTable(spec, exc.message)

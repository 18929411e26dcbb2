"""One interface for every lookup table type.

``open_table("type:name", config)`` returns a :class:`Table`. Types are
found by their ``type:`` prefix in the ``relayd.tables`` entry-point group
(relayd's own types register there too, see setup.py) and imported only
when a configuration uses them, so a package can add ``redis:`` or
``ldap:``. A table answers :meth:`Table.lookup` with the value, ``None``
for "not found", or raises a :class:`TemporaryLookupError` when it cannot
answer (the caller then replies 4xx, never accepts or rejects). A list of
tables is searched by :class:`relayd.tables.maps.Maps` (Postfix's
maps_find); the search orders (access(5), virtual(5)) live above, in
:mod:`relayd.tables.search`; a table only answers the key it is given.
"""
from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Iterable, Iterator

from relayd.config import ConfigError

ENTRY_POINT_GROUP = "relayd.tables"

log = logging.getLogger("relayd.tables")

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
    "mysql": "relayd.tables.mysql:MySQLTable",
}


class TemporaryLookupError(Exception):
    """A table could not answer: the mail waits (4xx), it is never accepted
    nor refused on a guess. This class itself is Postfix's DICT_ERR_RETRY:
    the backend cannot answer now (a database that is down, a table that
    could not be opened), which smtpd answers ``451 4.3.0 <name>: Temporary
    lookup failure``."""


class LookupConfigError(TemporaryLookupError):
    """The table answered something unusable (Postfix's DICT_ERR_CONFIG: an
    empty result, an access value naming a table): still 4xx, answered
    ``451 4.3.5 Server configuration error``."""


class Table:
    """A lookup table. ``spec`` is the "type:name" text it was opened with.

    Subclasses implement :meth:`lookup`; file-based ones may also implement
    :meth:`iterate` (``postmap -s``), :meth:`compile` (``postmap``) and,
    when they can change in place, :meth:`update` and :meth:`delete`
    (``postmap -i`` / ``-d``, opened with ``open_table(..., create=True)``).
    ``fixed`` is False for pattern tables (regexp, pcre, cidr...), which get
    the whole search string once instead of the partial keys of a search
    order (Postfix's DICT_FLAG_PATTERN). ``fold`` is Postfix's
    DICT_FLAG_FOLD_FIX: a table whose keys are stored in one case (hash,
    texthash, inline, unix) folds the keys it is given to lower case in
    lookup, update and delete; ``postmap -f`` turns it off. Pattern tables
    decide case by their own flags and ignore it.
    """

    fixed = True
    fold = True

    def __init__(self, spec: str, name: str, config=None):
        self.spec = spec
        self.name = name
        self.config = config

    def lookup(self, key: str) -> str | None:
        raise NotImplementedError

    def iterate(self) -> Iterator[tuple[str, str]]:
        raise ConfigError(f"{self.spec}: this table type cannot be listed")

    def folded(self, key: str) -> str:
        """*key* as this table stores it: lower case when ``fold`` is on."""
        return key.lower() if self.fold else key

    def without_case_folding(self) -> "Table":
        """``postmap -f``: keys as given instead of in lower case (clears ``fold``).

        Types that hold folded keys in memory (texthash) re-read their source."""
        self.fold = False
        return self

    def update(self, entries: Iterable[tuple[str, str]], *, duplicates: str = "warn",
               mode: int | None = None) -> int:
        """``postmap -i``: add *entries* (key, value), all or none; returns how
        many were written. A key already present is handled as *duplicates*
        says ("warn": keep the old value and log, "ignore", "replace"); *mode*
        sets the permission bits of a file the update creates."""
        raise ConfigError(f"{self.spec}: cannot update this table type")

    def delete(self, keys: Iterable[str]) -> int:
        """``postmap -d``: remove *keys*, all or none; returns how many were there."""
        raise ConfigError(f"{self.spec}: cannot delete from this table type")

    def close(self) -> None:
        """Let go of what the table holds open (files, connections)."""

    def __enter__(self) -> "Table":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @classmethod
    def open_for_update(cls, spec: str, name: str, config=None) -> "Table":
        """The table opened to be changed (:meth:`update`, :meth:`delete`);
        types that can change in place open it even when it does not exist
        yet (Postfix's O_RDWR | O_CREAT). By default: opened as for lookups."""
        return cls(spec, name, config)

    @classmethod
    def compile(cls, spec: str, name: str, config=None, **options) -> int:
        """Build the compiled form of ``name`` from its source, without
        opening the table first (its compiled form may not exist yet);
        returns the number of entries written. *options* are postmap's:
        ``fold``, ``duplicates``, ``mode`` and ``parse`` (the source format:
        a function text, path, fold= -> (line, key, value), as
        :func:`relayd.tables.textfile.key_value_lines`; postalias passes
        the aliases(5) one). Types with nothing to build (the text and
        pattern types read their source directly) refuse."""
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


def open_table(spec: str, config=None, *, create: bool = False) -> Table:
    """Open the table ``spec`` ("type:name"); ConfigError when it cannot be.

    With a *config*, ``$name`` forms in spec (``hash:$config_directory/access``)
    are expanded against it first. With *create*, the table is opened to be
    changed and need not exist yet (:meth:`Table.open_for_update`).
    """
    spec = _expanded(spec, config)
    kind, name = split_spec(spec)
    cls = table_class(kind)
    return cls.open_for_update(spec, name, config) if create else cls(spec, name, config)


def compile_table(spec: str, config=None, **options) -> int:
    """``postmap type:name``: build the table's compiled form from its source
    (*options* as :meth:`Table.compile`)."""
    spec = _expanded(spec, config)
    kind, name = split_spec(spec)
    return table_class(kind).compile(spec, name, config, **options)


def _expanded(spec: str, config) -> str:
    return config.expand(spec) if config is not None and "$" in spec else spec


class TableUnavailable(ConfigError):
    """The table cannot be opened now (its file or database is missing), as
    opposed to a table that is wrong (a bad line), which stops startup."""


class UnavailableTable(Table):
    """Stands in for a table that could not be opened (Postfix's dict_surrogate):
    every lookup is a temporary failure (DICT_ERR_RETRY) naming the cause, so
    mail that needs the table gets 4xx and nothing else is affected."""

    def __init__(self, spec: str, reason: str):
        super().__init__(spec, spec.partition(":")[2])
        self.reason = reason

    def lookup(self, key: str) -> str | None:
        log.warning("%s is unavailable. %s", self.spec, self.reason)
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

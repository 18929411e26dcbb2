"""A list of tables searched in order: Postfix's MAPS (src/global/maps.c).

Every parameter that names tables (``virtual_alias_maps = hash:a, regexp:b``,
``header_checks``, a ``type:table`` item of relay_domains...) is searched
the same way, by :meth:`Maps.find`, as maps_find() does:

* the key goes to each table in order; the first table that has it wins;
* a *partial* key (a parent domain, ``user@``...: any key but the whole
  search string) skips the pattern tables, which see only whole strings
  (``Table.fixed`` False; Postfix's DICT_FLAG_FIXED);
* an empty key finds nothing, without asking any table;
* case folding belongs to each table (``Table.fold``, Postfix's
  DICT_FLAG_FOLD_FIX): the key goes to every table as given, and the
  tables that store keys in lower case fold it, as Postfix's dict_get();
  a table with case-sensitive keys gets the key unchanged;
* a table that cannot answer ends the search (a later table must not
  decide instead): its TemporaryLookupError passes, after the warning
  ``type:name lookup error for "key"``; an empty result is a configuration
  error (:class:`LookupConfigError`), as maps_find() makes it.

:meth:`Maps.search` puts a search order (:mod:`relayd.tables.search`) to
the list: each key to every table before the next key (virtual(5)).
"""
from __future__ import annotations

import logging
from time import perf_counter
from typing import Iterable, Iterator, NamedTuple

from relayd.metrics import METER
from relayd.tables.base import LookupConfigError, Table, TemporaryLookupError

log = logging.getLogger("relayd.tables")


class Found(NamedTuple):
    """A search result: the value and the key that found it."""

    value: str
    key: str


def _count(table: str, result: str, started: float) -> None:
    METER.inc("table_lookups", table, result)
    METER.observe("table_lookup_duration_seconds", table, value=perf_counter() - started)


class Maps:
    """The tables of one parameter (``title``), searched in order.

    ``checked=False`` asks the tables directly, not through maps_find(), as
    Postfix's postmap -q and its domain lists (match_list: the table items
    of relay_domains, mydestination...) do: an empty key is asked and an
    empty value is an answer like any other."""

    __slots__ = ("title", "tables", "checked")

    def __init__(self, title: str, tables: Iterable[Table], *, checked: bool = True):
        self.title = title
        self.tables = tuple(tables)
        self.checked = checked

    def find(self, key: str, *, partial: bool = False) -> str | None:
        """maps_find(): the first table's value for *key*, None when none has it.

        TemporaryLookupError when a table cannot answer; LookupConfigError
        when one answers with an empty value."""
        if not key and self.checked:
            return None
        for table in self.tables:
            if partial and not table.fixed:
                continue
            started = perf_counter()
            try:
                value = table.lookup(key)
            except TemporaryLookupError as exc:
                _count(table.spec, "config" if isinstance(exc, LookupConfigError) else "retry",
                       started)
                log.warning('%s lookup error for "%s"', table.spec, key)
                raise
            _count(table.spec, "notfound" if value is None else "found", started)
            if value is not None:
                if not value and self.checked:
                    log.warning("%s lookup of %s returns an empty string result", self.title, key)
                    log.warning("%s should return NO RESULT in case of NOT FOUND", self.title)
                    raise LookupConfigError(f"{self.title}: {table.spec}: empty result for {key}")
                return value
        return None

    def search(self, queries: Iterable[tuple[str, bool]]) -> Found | None:
        """The first value found for ``(key, partial)`` queries, in order: each
        query goes to every table before the next one is tried."""
        for key, partial in queries:
            value = self.find(key, partial=partial)
            if value is not None:
                return Found(value, key)
        return None

    def close(self) -> None:
        """Close every table."""
        for table in self.tables:
            table.close()

    def __bool__(self) -> bool:
        return bool(self.tables)

    def __iter__(self) -> Iterator[Table]:
        return iter(self.tables)

    def __repr__(self) -> str:
        return f"<Maps {self.title} {[t.spec for t in self.tables]}>"

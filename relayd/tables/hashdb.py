"""``hash:FILE``: the table ``postmap FILE`` compiles into FILE.db.

relayd's FILE.db is an SQLite database (standard library), not Postfix's
Berkeley DB: one ``map(key PRIMARY KEY, value)`` table plus a ``meta`` table
naming the format. A lookup is one indexed query, so a large table is never
read whole. ``postmap`` writes a temporary file next to FILE.db, fsyncs it and
renames it over FILE.db, so a reader sees the old or the new table, never a
half-written one; open readers keep the old file until they notice the new
one (within a second, see relayd.tables.filetable).
"""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections import OrderedDict
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterable, Iterator
from urllib.parse import quote

from relayd.config import ConfigError
from relayd.tables.base import TableUnavailable, TemporaryLookupError
from relayd.tables.filetable import FileTable
from relayd.tables.textfile import (DUP_REPLACE, DUP_WARN, key_value_entries, key_value_lines,
                                   read_source)

log = logging.getLogger("relayd.tables")

FORMAT = "relayd-hash-1"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LOOKUP = "SELECT value FROM map WHERE key = ?"

# How many recent keys (found or not) each hash: table remembers. An RCPT
# through four access maps asks ~18 keys, mostly the same ones for every
# recipient of a session and for the next session of the same client; a hit
# costs well under a microsecond where SQLite costs ~6 (docs/performance.md).
LOOKUP_CACHE_SIZE = 4096
_ABSENT = object()

# The command that builds FILE.db from its source, named in the error for a missing or
# foreign FILE.db: postmap's keys are not postalias's, so an aliases(5) file needs
# relayd-postalias (relayd.rewrite.tables and the commands say which, see rebuilt_by).
_rebuild_command: ContextVar[str] = ContextVar("rebuild_command", default="relayd-postmap")

# Bumped in a forked child: an SQLite connection must not cross a fork().
_fork_generation = 0

# A source format: (text, path, fold=) -> (line number, key, value) per entry.
Parser = Callable[..., Iterator[tuple[int, str, str]]]


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def db_path(path: str) -> str:
    """Where the compiled form of source *path* lives: FILE.db, as Postfix."""
    return path + ".db"


def write_db(path: str, entries: dict[str, str], *, mode: int | None = None) -> None:
    """Atomically replace ``path.db`` with *entries* (temp file, fsync, rename).

    The new file gets *mode*, or by default the permission bits of the source
    file *path* (as Postfix's postmap; postmap -p passes 0o644)."""
    _replace_db(path, lambda tmp: _write_sqlite(tmp, entries), mode)


def build_hash(path: str, *, fold: bool = True, duplicates: str = DUP_WARN,
               mode: int | None = None, parse: Parser = key_value_lines) -> int:
    """``postmap [-f] [-r|-w] [-p] hash:FILE``: FILE -> FILE.db; the number of
    entries. *parse* reads the source format (postalias passes aliases(5)'s)."""
    entries = key_value_entries(read_source(path), path, fold=fold, duplicates=duplicates,
                                parse=parse)
    write_db(path, entries, mode=mode)
    return len(entries)


def update_db(path: str, entries: Iterable[tuple[str, str]], *, duplicates: str = DUP_WARN,
              mode: int | None = None) -> int:
    """``postmap -i``: add *entries* (key, value) to ``path.db``, creating it if
    absent, without reading the source file; returns how many were written.

    A key already in the table is handled as *duplicates* says, warning
    ``FILE.db: duplicate entry: "key"`` by default, as Postfix does. The update
    is all or nothing: a bad entry leaves the table as it was."""
    target = db_path(path)
    existing = _existing_mode(path)
    written = []

    def fill(tmp: str) -> None:
        if existing is None:
            _write_sqlite(tmp, {})
        else:
            shutil.copyfile(target, tmp)
        conn = sqlite3.connect(tmp)
        try:
            written.append(_add_entries(conn, entries, duplicates, target))
            conn.commit()
        finally:
            conn.close()

    _replace_db(path, fill, mode if mode is not None else existing)
    return written[0]


def _add_entries(conn: sqlite3.Connection, entries, duplicates: str, target: str) -> int:
    written = 0
    for key, value in entries:
        if conn.execute(_LOOKUP, (key,)).fetchone() is not None:
            if duplicates == DUP_WARN:
                log.warning('%s: duplicate entry: "%s"', target, key)
            if duplicates != DUP_REPLACE:
                continue
        conn.execute("INSERT OR REPLACE INTO map VALUES (?, ?)", (key, value))
        written += 1
    return written


def delete_keys(path: str, keys: Iterable[str]) -> int:
    """``postmap -d``: remove each of *keys* (as given: fold them first) from
    ``path.db``; returns how many were there. ConfigError if the table is missing."""
    target = db_path(path)
    mode = _existing_mode(path)
    if mode is None:
        raise TableUnavailable(f"open database {target}: No such file or directory")
    found = []

    def fill(tmp: str) -> None:
        shutil.copyfile(target, tmp)
        conn = sqlite3.connect(tmp)
        try:
            found.append(sum(conn.execute("DELETE FROM map WHERE key = ?", (key,)).rowcount
                             for key in keys))
            conn.commit()
        finally:
            conn.close()

    _replace_db(path, fill, mode)
    return found[0]


def _existing_mode(path: str) -> int | None:
    """The permission bits of ``path.db`` after checking it is relayd's; None if absent."""
    try:
        mode = os.stat(db_path(path)).st_mode & 0o777
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {db_path(path)}: {exc.strerror}") from None
    open_db(path).close()  # a foreign (Berkeley DB) file is an error, not overwritten
    return mode


def _replace_db(path: str, fill: Callable[[str], None], mode: int | None) -> None:
    """Build a temporary file with *fill*, fsync it and rename it over ``path.db``."""
    target = db_path(path)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        if os.path.exists(tmp):
            os.unlink(tmp)
        fill(tmp)
        _set_mode(tmp, path, mode)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, target)
        _fsync_directory(os.path.dirname(target) or ".")
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot write {target}: {exc}") from None
    finally:
        for leftover in (tmp, tmp + "-journal"):
            if os.path.exists(leftover):
                os.unlink(leftover)


def _set_mode(tmp: str, path: str, mode: int | None) -> None:
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            return  # no source file (postalias from stdin): keep the umask's mode
    os.chmod(tmp, mode)


def _write_sqlite(tmp: str, entries: dict[str, str]) -> None:
    conn = sqlite3.connect(tmp)
    try:
        # No journal: the file is private until the rename, fsynced by write_db.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID")
        conn.execute("CREATE TABLE map (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
        conn.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
        conn.executemany("INSERT INTO map VALUES (?, ?)", entries.items())
        conn.commit()
    finally:
        conn.close()


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def rebuilt_by(command: str):
    """Within it, the hash: tables opened (and their errors) name ``command``
    (relayd-postalias for an aliases(5) source) as the one that builds FILE.db."""
    token = _rebuild_command.set(command)
    try:
        yield
    finally:
        _rebuild_command.reset(token)


def open_db(path: str, command: str | None = None) -> sqlite3.Connection:
    """A read-only connection to ``path.db``; ConfigError if it is missing or foreign,
    naming ``command`` (else the one :func:`rebuilt_by` set) as what builds it."""
    target = db_path(path)
    command = command or _rebuild_command.get()
    try:
        with open(target, "rb") as f:
            magic = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise TableUnavailable(f"open database {target}: {exc.strerror} "
                               f"(run {command} {path})") from None
    if magic != _SQLITE_MAGIC:
        postfix_command = command.removeprefix("relayd-")
        raise ConfigError(f"{target} is not a relayd table (built by Postfix's "
                          f"{postfix_command}?): run {command} {path}")
    try:
        conn = sqlite3.connect(f"file:{quote(target)}?mode=ro", uri=True,
                               check_same_thread=False)
        row = conn.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
    except sqlite3.Error as exc:
        raise ConfigError(f"open database {target}: {exc}") from None
    if row is None or row[0] != FORMAT:
        raise ConfigError(f"{target}: unknown table format {row and row[0]!r}: "
                          f"run {command} {path}")
    return conn


class HashTable(FileTable):
    """Lookups in FILE.db; keys folded to lower case, as Postfix folds them.

    The last :data:`LOOKUP_CACHE_SIZE` answers (values and "not found") are
    kept in an LRU cache, emptied whenever the table is reloaded, so a cached
    answer is never older than the file the table reads.
    """

    fold = True

    def __init__(self, spec: str, name: str, config=None, *, load: bool = True):
        self._cache: OrderedDict[str, str | None] = OrderedDict()
        self._cached_for = None  # the connection whose answers _cache holds
        self._rebuild_command = _rebuild_command.get()  # a reload's error names it too
        super().__init__(spec, name, config, load=load)

    def watched_path(self) -> str:
        return db_path(self.path)

    def load(self) -> sqlite3.Connection:
        self._generation = _fork_generation
        return open_db(self.path, self._rebuild_command)

    @classmethod
    def compile(cls, spec: str, name: str, config=None, **options) -> int:
        """``postmap hash:FILE``: FILE -> FILE.db; returns the number of entries."""
        return build_hash(name, **options)

    @classmethod
    def open_for_update(cls, spec: str, name: str, config=None) -> "HashTable":
        """Opened for :meth:`update` / :meth:`delete`: FILE.db need not exist yet."""
        return cls(spec, name, config, load=False)

    def update(self, entries, *, duplicates: str = DUP_WARN, mode: int | None = None) -> int:
        """``postmap -i``: see :func:`update_db`; keys folded as ``fold`` says."""
        self._cache.clear()
        return update_db(self.path, ((self.folded(k), v) for k, v in entries),
                         duplicates=duplicates, mode=mode)

    def delete(self, keys) -> int:
        """``postmap -d``: see :func:`delete_keys`; keys folded as ``fold`` says."""
        self._cache.clear()
        return delete_keys(self.path, [self.folded(k) for k in keys])

    def close(self) -> None:
        if self._contents is not None:
            self._contents.close()
            self._contents = self._cached_for = None

    def without_case_folding(self) -> "HashTable":
        """``postmap -f``: look keys up exactly as given."""
        self._cache.clear()
        return super().without_case_folding()

    def lookup(self, key: str) -> str | None:
        conn = self.contents()
        if self._generation != _fork_generation:
            conn = self._contents = self.load()
        cache = self._cache
        if conn is not self._cached_for:  # reloaded (or first lookup): old answers are void
            cache.clear()
            self._cached_for = conn
        key = self.folded(key)
        value = cache.get(key, _ABSENT)
        if value is not _ABSENT:
            cache.move_to_end(key)
            return value
        try:
            row = conn.execute(_LOOKUP, (key,)).fetchone()
        except sqlite3.Error as exc:
            raise TemporaryLookupError(f"{self.spec}: {exc}") from None
        value = None if row is None else row[0]
        cache[key] = value
        if len(cache) > LOOKUP_CACHE_SIZE:
            cache.popitem(last=False)
        return value

    def iterate(self):
        try:
            return iter(self.contents().execute("SELECT key, value FROM map").fetchall())
        except sqlite3.Error as exc:
            raise TemporaryLookupError(f"{self.spec}: {exc}") from None

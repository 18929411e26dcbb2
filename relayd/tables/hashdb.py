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

import os
import sqlite3
from urllib.parse import quote

from relayd.config import ConfigError
from relayd.tables.base import TableUnavailable, TemporaryLookupError
from relayd.tables.filetable import FileTable
from relayd.tables.textfile import key_value_entries, read_source

FORMAT = "relayd-hash-1"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LOOKUP = "SELECT value FROM map WHERE key = ?"

# Bumped in a forked child: an SQLite connection must not cross a fork().
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def db_path(path: str) -> str:
    """Where the compiled form of source *path* lives: FILE.db, as Postfix."""
    return path + ".db"


def write_db(path: str, entries: dict[str, str]) -> None:
    """Atomically replace ``path.db`` with *entries* (temp file, fsync, rename)."""
    target = db_path(path)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        _write_sqlite(tmp, entries)
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        except OSError:
            pass  # no source file (postalias from stdin): keep the umask's mode
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
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_sqlite(tmp: str, entries: dict[str, str]) -> None:
    if os.path.exists(tmp):
        os.unlink(tmp)
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


def open_db(path: str) -> sqlite3.Connection:
    """A read-only connection to ``path.db``; ConfigError if it is missing or foreign."""
    target = db_path(path)
    try:
        with open(target, "rb") as f:
            magic = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise TableUnavailable(f"open database {target}: {exc.strerror} "
                               f"(run relayd-postmap {path})") from None
    if magic != _SQLITE_MAGIC:
        raise ConfigError(f"{target} is not a relayd table (built by Postfix's postmap?): "
                          f"run relayd-postmap {path}")
    try:
        conn = sqlite3.connect(f"file:{quote(target)}?mode=ro", uri=True,
                               check_same_thread=False)
        row = conn.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
    except sqlite3.Error as exc:
        raise ConfigError(f"open database {target}: {exc}") from None
    if row is None or row[0] != FORMAT:
        raise ConfigError(f"{target}: unknown table format {row and row[0]!r}: run relayd-postmap {path}")
    return conn


class HashTable(FileTable):
    """Lookups in FILE.db; keys folded to lower case, as Postfix folds them."""

    def watched_path(self) -> str:
        return db_path(self.path)

    def load(self) -> sqlite3.Connection:
        self._generation = _fork_generation
        return open_db(self.path)

    @classmethod
    def compile(cls, spec: str, name: str, config=None) -> int:
        """``postmap hash:FILE``: FILE -> FILE.db; returns the number of entries."""
        entries = key_value_entries(read_source(name), name)
        write_db(name, entries)
        return len(entries)

    def lookup(self, key: str) -> str | None:
        conn = self.contents()
        if self._generation != _fork_generation:
            conn = self._contents = self.load()
        try:
            row = conn.execute(_LOOKUP, (key.lower(),)).fetchone()
        except sqlite3.Error as exc:
            raise TemporaryLookupError(f"{self.spec}: {exc}") from None
        return None if row is None else row[0]

    def iterate(self):
        try:
            return iter(self.contents().execute("SELECT key, value FROM map").fetchall())
        except sqlite3.Error as exc:
            raise TemporaryLookupError(f"{self.spec}: {exc}") from None

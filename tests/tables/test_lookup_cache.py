"""The LRU cache in front of hash: tables: bounded, and never older than the table."""
import io
import os

import pytest

from relayd.cli.postmap import main as postmap_main
from relayd.tables import filetable, hashdb
from relayd.tables.base import compile_table, open_table


@pytest.fixture
def check_every_lookup(monkeypatch):
    """Stat on every lookup instead of once a second (the interval is not under test)."""
    monkeypatch.setattr(filetable, "CHECK_INTERVAL", 0.0)


def _rebuild(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
    compile_table("hash:" + path)
    db = path + ".db"  # a rebuild within the same mtime tick must still be noticed
    os.utime(db, ns=(os.stat(db).st_atime_ns, os.stat(db).st_mtime_ns + 10**9))


def test_cached_answers_and_misses_are_dropped_on_reload(write_table, check_every_lookup):
    path = write_table("access", "known OLD\n")
    compile_table("hash:" + path)
    table = open_table("hash:" + path)
    assert (table.lookup("KNOWN"), table.lookup("later")) == ("OLD", None)
    assert (table.lookup("known"), table.lookup("later")) == ("OLD", None)  # now from the cache
    _rebuild(path, "known NEW\nlater OK\n")
    assert (table.lookup("known"), table.lookup("later")) == ("NEW", "OK")


def test_postmap_d_and_i_reach_a_running_table(write_table, check_every_lookup, monkeypatch):
    path = write_table("access", "a 1\nb 2\n")
    compile_table("hash:" + path)
    table = open_table("hash:" + path)
    assert (table.lookup("a"), table.lookup("c")) == ("1", None)
    assert postmap_main(["-d", "a", path]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("c 3\n"))
    assert postmap_main(["-i", path]) == 0
    db = path + ".db"
    os.utime(db, ns=(os.stat(db).st_atime_ns, os.stat(db).st_mtime_ns + 10**9))
    assert (table.lookup("a"), table.lookup("c")) == (None, "3")


def test_the_cache_keeps_the_most_recently_used_keys(write_table, monkeypatch):
    monkeypatch.setattr(hashdb, "LOOKUP_CACHE_SIZE", 2)
    path = write_table("access", "a 1\nb 2\nc 3\n")
    compile_table("hash:" + path)
    table = open_table("hash:" + path)
    for key in ("a", "b", "a", "c", "missing"):
        table.lookup(key)
    assert list(table._cache.items()) == [("c", "3"), ("missing", None)]
    assert [table.lookup(k) for k in ("a", "b", "c", "missing")] == ["1", "2", "3", None]
    assert len(table._cache) == 2

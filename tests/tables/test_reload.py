"""A file-based table re-reads its changed file; a bad new version keeps the old."""
import logging
import os

import pytest

from relayd.tables import filetable
from relayd.tables.base import compile_table, open_table


@pytest.fixture
def check_every_lookup(monkeypatch):
    """Stat on every lookup instead of once a second (the interval is not under test)."""
    monkeypatch.setattr(filetable, "CHECK_INTERVAL", 0.0)


def _rewrite(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))


@pytest.mark.parametrize("kind, before, after", [
    ("texthash", "k old\n", "k new value\n"),
    ("regexp", "/^k$/ old\n", "/^k$/ new value\n"),
    ("cidr", "127.0.0.1 old\n", "127.0.0.1 new value\n"),
])
def test_changed_file_is_reloaded(kind, before, after, write_table, check_every_lookup):
    path = write_table(kind, before)
    table = open_table(f"{kind}:{path}")
    key = "127.0.0.1" if kind == "cidr" else "k"
    assert table.lookup(key) == "old"
    _rewrite(path, after)
    assert table.lookup(key) == "new value"


def test_no_stat_before_the_interval_has_passed(write_table, monkeypatch):
    monkeypatch.setattr(filetable, "CHECK_INTERVAL", 3600.0)
    path = write_table("access", "k old\n")
    table = open_table("texthash:" + path)
    table.lookup("k")
    _rewrite(path, "k new value\n")
    assert table.lookup("k") == "old"  # not looked at again within CHECK_INTERVAL


def test_bad_new_version_keeps_the_old_contents(write_table, check_every_lookup, caplog):
    path = write_table("regexp", "/^k$/ old\n")
    table = open_table("regexp:" + path)
    _rewrite(path, "/^k$/ old\n/broken\n")
    with caplog.at_level(logging.ERROR, logger="relayd.master"):
        assert table.lookup("k") == "old"
    assert f"{path}, line 2" in caplog.text and "keeping the previous contents" in caplog.text


def test_hash_reloads_after_postmap(write_table, check_every_lookup):
    path = write_table("access", "k old\n")
    compile_table("hash:" + path)
    table = open_table("hash:" + path)
    assert table.lookup("k") == "old"
    _rewrite(path, "k new value\n")
    assert table.lookup("k") == "old"  # the source changed, the .db did not
    compile_table("hash:" + path)
    assert table.lookup("k") == "new value"

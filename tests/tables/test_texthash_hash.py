"""texthash: and hash: — the postmap(1) text format, FILE.db, Postfix's answers."""
import logging
import os
import subprocess

import pytest

from relayd.config import ConfigError
from relayd.tables.base import compile_table, open_table
from tests.tables.conftest import POSTFIX_POSTMAP

ACCESS = """\
# access(5) table
Example.COM        REJECT
spammer@example.net   550 Go away
  and stay away
# a comment inside a continuation does not end it
  please
192.168.1          OK
example.com        OK
user@              DUNNO
"""
KEYS = ["example.com", "EXAMPLE.com", "spammer@example.net", "192.168.1", "user@",
        "192.168", "nothere"]


def test_texthash_lookups_fold_keys_and_join_continuations(write_table):
    table = open_table("texthash:" + write_table("access", ACCESS))
    assert table.lookup("EXAMPLE.COM") == "REJECT"
    assert table.lookup("spammer@example.net") == "550 Go away  and stay away  please"
    assert table.lookup("192.168") is None
    assert table.fixed is True


def test_duplicate_key_keeps_the_first_and_warns(write_table, caplog):
    path = write_table("access", ACCESS)
    with caplog.at_level(logging.WARNING, logger="relayd.tables"):
        table = open_table("texthash:" + path)
    assert table.lookup("example.com") == "REJECT"
    assert f'{path}, line 8: duplicate entry: "example.com"' in caplog.text


@pytest.mark.parametrize("kind", ["texthash", "hash"])
def test_same_answers_as_postfix_postmap(kind, write_table, postfix_postmap):
    path = write_table("access", ACCESS)
    if kind == "hash":
        assert compile_table("hash:" + path) == 4  # the duplicate is not written
    ours = {key: open_table(f"{kind}:{path}").lookup(key) for key in KEYS}
    # Postfix reads the same source as texthash: (its hash: would need its own .db).
    assert ours == postfix_postmap("texthash:" + path, KEYS)
    assert ours["example.com"] == "REJECT"


@pytest.mark.parametrize("text, line, message", [
    ("a b\nlonely\n", 2, "expected format: key whitespace value"),
    ("  starts with blanks\n", 1, "logical line must not start with whitespace"),
])
def test_bad_line_names_file_and_line(text, line, message, write_table):
    path = write_table("bad", text)
    for spec in ("texthash:" + path, "hash:" + path):
        with pytest.raises(ConfigError) as err:
            (open_table if spec.startswith("texthash") else compile_table)(spec)
        assert err.value.file == path and err.value.line == line
        assert message in str(err.value)


def test_hash_without_db_asks_for_postmap(write_table):
    path = write_table("access", ACCESS)
    with pytest.raises(ConfigError, match=rf"open database {path}\.db: .*run relayd-postmap"):
        open_table("hash:" + path)


def test_hash_refuses_a_db_written_by_postfix(write_table, postfix_confdir):
    path = write_table("access", "a b\n")
    subprocess.run([POSTFIX_POSTMAP, "-c", postfix_confdir, "hash:" + path], check=True)
    with pytest.raises(ConfigError, match="is not a relayd table"):
        open_table("hash:" + path)


def test_compile_replaces_the_db_atomically(write_table):
    path = write_table("access", "a 1\n")
    compile_table("hash:" + path)
    table = open_table("hash:" + path)
    inode = os.stat(path + ".db").st_ino
    with open(path, "w") as f:
        f.write("a 2\nb 3\n")
    compile_table("hash:" + path)
    assert os.stat(path + ".db").st_ino != inode  # renamed over, not rewritten in place
    assert sorted(os.listdir(os.path.dirname(path))) == ["access", "access.db"]
    assert table.lookup("a") == "1"  # the open table still reads its file until it reloads
    assert open_table("hash:" + path).lookup("A") == "2"
    assert sorted(open_table("hash:" + path).iterate()) == [("a", "2"), ("b", "3")]


def test_config_directory_is_expanded_in_table_names(tmp_path):
    from relayd.config import load_config
    (tmp_path / "main.cf").write_text("maps_dir = $config_directory/maps\n")
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "access").write_text("example.com OK\n")
    config = load_config(str(tmp_path))
    table = open_table("texthash:$maps_dir/access", config)
    assert table.path == str(tmp_path / "maps" / "access")
    assert table.lookup("example.com") == "OK"

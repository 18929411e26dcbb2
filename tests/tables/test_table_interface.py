"""The Table interface's write side (update / delete / close), which
postmap -i / -d and postalias use instead of reaching into hash: itself."""
import pytest

from relayd.config import ConfigError
from relayd.tables.base import compile_table, open_table


def test_a_hash_table_is_created_updated_and_deleted_from_through_the_interface(tmp_path):
    spec = f"hash:{tmp_path}/access"
    with open_table(spec, create=True) as table:      # FILE.db need not exist yet
        assert table.update([("Bob@Example.COM", "OK"), ("spam.example", "REJECT")]) == 2
        assert table.update([("bob@example.com", "DUNNO")]) == 0   # duplicate: kept, warned
        assert table.update([("bob@example.com", "DUNNO")], duplicates="replace") == 1
        assert table.delete(["SPAM.example", "absent"]) == 1
    reader = open_table(spec)
    assert (reader.lookup("BOB@example.com"), reader.lookup("spam.example")) == ("DUNNO", None)
    reader.close()


def test_without_case_folding_updates_and_deletes_keys_as_given(tmp_path):
    spec = f"hash:{tmp_path}/exact"
    with open_table(spec, create=True).without_case_folding() as table:
        table.update([("Key", "upper"), ("key", "lower")])
        assert table.delete(["KEY"]) == 0
    assert sorted(open_table(spec).iterate()) == [("Key", "upper"), ("key", "lower")]


def test_types_that_cannot_change_in_place_refuse(tmp_path):
    table = open_table("inline:{ a=b }", create=True)
    with pytest.raises(ConfigError, match="cannot update"):
        table.update([("c", "d")])
    with pytest.raises(ConfigError, match="cannot delete"):
        table.delete(["a"])


def test_compile_takes_postmaps_options_and_a_source_format(tmp_path):
    from relayd.tables.aliases import alias_lines
    source = tmp_path / "aliases"
    source.write_text("Root: Admin, ops\n")
    assert compile_table(f"hash:{source}", parse=alias_lines, fold=False) == 1
    assert list(open_table(f"hash:{source}").without_case_folding().iterate()) == [
        ("Root", "Admin, ops")]

"""The virtual(5) search order and mail_addr_map() results."""
import pytest

from relayd.config import ConfigError
from relayd.rewrite.maps import AddressMaps, strip_extension
from relayd.tables.inline import InlineTable


def maps(make_config, table, **params):
    return AddressMaps(make_config(canonical_maps=table, **params), "canonical_maps")


def test_full_address_with_extension_wins(make_config):
    m = maps(make_config, "inline:{ bob+news@example.org=a@x, bob@example.org=b@x, @example.org=c@x }")
    assert m.find("bob+news@example.org") == ("a@x", "")


def test_without_extension_remembers_the_extension(make_config):
    m = maps(make_config, "inline:{ bob@example.org=b@x, @example.org=c@x }")
    assert m.find("bob+news@example.org") == ("b@x", "+news")
    assert m.map("bob+news@example.org", propagate=True) == ["b+news@x"]
    assert m.map("bob+news@example.org", propagate=False) == ["b@x"]


def test_bare_user_only_for_local_domains(make_config):
    m = maps(make_config, "inline:{ bob=local@x }")
    assert m.find("bob@example.com") == ("local@x", "")        # mydestination
    assert m.find("bob@[127.0.0.1]") == ("local@x", "")        # inet_interfaces
    assert m.find("bob@example.org") is None                   # remote: never "bob"


def test_user_with_extension_before_bare_user(make_config):
    m = maps(make_config, "inline:{ bob+x=one@x, bob=two@x }")
    assert m.find("bob+x@example.com") == ("one@x", "")
    assert m.find("bob+y@example.com") == ("two@x", "+y")


def test_catch_all_is_last(make_config):
    m = maps(make_config, "inline:{ @example.org=all@x, bob@example.org=bob@x }")
    assert m.find("bob@example.org") == ("bob@x", "")
    assert m.find("eve@example.org") == ("all@x", "")
    assert m.find("eve@sub.example.org") is None               # no parent-domain walk


def test_each_key_goes_to_every_table_before_the_next_key(make_config):
    m = maps(make_config, "inline:{ @example.org=first@x }, inline:{ bob@example.org=second@x }")
    assert m.find("bob@example.org") == ("second@x", "")


def test_pattern_tables_see_only_the_full_address(make_config):
    m = maps(make_config, "static:pattern@x")
    assert not m.tables.tables[0].fixed
    assert m.find("bob+ext@example.org") == ("pattern@x", "")


def test_keys_are_case_folded_for_indexed_tables(make_config):
    m = maps(make_config, "inline:{ bob@example.org=b@x }")
    assert m.find("BoB@Example.ORG") == ("b@x", "")


def test_at_otherdomain_result_keeps_the_user_without_extension(make_config):
    m = maps(make_config, "inline:{ @old.example=@new.example }")
    assert m.map("bob+tag@old.example", propagate=True) == ["bob+tag@new.example"]
    m = maps(make_config, "inline:{ @old.example=@new.example, bob@old.example=@other.example }")
    assert m.map("bob+tag@old.example", propagate=False) == ["bob@other.example"]


def test_several_results_and_bare_names_get_myorigin(make_config):
    m = maps(make_config, "inline:{ {team@example.org = ann@x.example, carl} }")
    assert m.map("team@example.org", propagate=True) == ["ann@x.example", "carl@example.com"]


def test_no_delimiter_no_extension_search(make_config):
    m = maps(make_config, "inline:{ bob@example.org=b@x }", recipient_delimiter="")
    assert m.find("bob+news@example.org") is None


def test_several_delimiter_characters():
    assert strip_extension("bob-list+x", "+-") == ("bob", "-list+x")
    assert strip_extension("bob", "+") == ("bob", "")
    assert strip_extension("+bob", "+") == ("+bob", "")


def test_proxy_prefix_is_removed_and_a_bad_type_names_the_parameter(make_config):
    assert maps(make_config, "proxy:inline:{ a@b=c@d }").find("a@b") == ("c@d", "")
    with pytest.raises(ConfigError, match="parameter canonical_maps: unsupported dictionary type: nosuch"):
        maps(make_config, "nosuch:/etc/x")


class CaseSensitive(InlineTable):
    """A fixed table whose keys keep their case, as Postfix's tcp: and
    socketmap: (they fold only with fold_mul, which no caller sets)."""

    fold = False


def test_case_folding_is_the_tables_not_the_searchs(make_config, monkeypatch):
    """Postfix folds in each dict (DICT_FLAG_FOLD_FIX), maps_find() passes the
    key as given: a case-sensitive fixed table sees the address unchanged."""
    from relayd.tables import base
    monkeypatch.setitem(base.BUILTIN_TYPES, "exact", "tests.rewrite.test_search:CaseSensitive")
    m = maps(make_config, "exact:{ Bob@Example.ORG=b@x }")
    assert m.find("Bob@Example.ORG") == ("b@x", "")
    assert m.find("bob@example.org") is None

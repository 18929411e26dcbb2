"""The maps layer (relayd/tables/maps.py): Postfix's maps_find() written once,
for every list of tables relayd searches."""
import logging

import pytest

from relayd.tables.base import LookupConfigError, TemporaryLookupError, open_table
from relayd.tables.maps import Maps
from relayd.tables.search import Query, address_queries, host_queries


class Recording:
    """A real table (opened from its spec) that also records the keys it was asked."""

    def __init__(self, spec):
        self.table = open_table(spec)
        self.spec, self.fixed = spec, self.table.fixed
        self.asked = []

    def lookup(self, key):
        self.asked.append(key)
        return self.table.lookup(key)


def test_pattern_tables_see_only_the_full_strings():
    pattern = Recording("static:REJECT")
    assert Maps("t", [pattern]).search(
        host_queries("mail.example.com", "192.0.2.25")).value == "REJECT"
    assert pattern.asked == ["mail.example.com"]
    pattern = Recording("static:REJECT")
    indexed = Recording("inline:{other=OK}")
    Maps("t", [indexed, pattern]).search(address_queries("u@example.com"))
    assert indexed.asked == ["u@example.com"] and pattern.asked == ["u@example.com"]


def test_each_query_goes_to_each_table_before_the_next_query():
    first = Recording("inline:{example.com=FIRST}")
    second = Recording("inline:{u@example.com=SECOND}")
    found = Maps("t", [first, second]).search(address_queries("u@example.com"))
    assert (found.value, found.key) == ("SECOND", "u@example.com")
    assert first.asked == ["u@example.com"] and second.asked == ["u@example.com"]


def test_search_skips_empty_keys():
    table = Recording("inline:{a=b}")
    assert Maps("t", [table]).search([Query("", False), Query("a", True)]).value == "b"
    assert table.asked == ["a"]


def test_first_table_in_order_wins_and_partial_keys_skip_pattern_tables():
    maps = Maps("t", [Recording("static:PATTERN"), Recording("inline:{k=FIXED}")])
    assert maps.find("k") == "PATTERN"
    assert maps.find("k", partial=True) == "FIXED"
    assert maps.find("other", partial=True) is None


def test_each_table_folds_case_as_its_fold_flag_says(tmp_path):
    """Postfix's DICT_FLAG_FOLD_FIX: the key goes to every table as given; a
    table that stores keys in lower case folds it, a case-sensitive one
    (postmap -f, a tcp:-like type) gets it unchanged."""
    source = tmp_path / "virtual"
    source.write_text("Info@Example.COM   folded\n")
    folding = open_table(f"texthash:{source}")
    exact = open_table("inline:{ Info@Example.COM=exact }").without_case_folding()
    assert (folding.fold, exact.fold) == (True, False)
    maps = Maps("virtual_alias_maps", [exact, folding])
    assert maps.find("Info@Example.COM") == "exact"
    assert maps.find("info@example.com") == "folded"
    assert maps.find("INFO@EXAMPLE.COM") == "folded"


class Down:
    """A backend that cannot answer (a database that is down): no real one here."""

    spec, fixed = "down:x", True

    def lookup(self, key):
        raise TemporaryLookupError("connection refused")


def test_a_table_that_cannot_answer_ends_the_search_with_postfix_warning(caplog):
    later = Recording("inline:{k=LATER}")
    with caplog.at_level(logging.WARNING, "relayd.tables"):
        with pytest.raises(TemporaryLookupError) as failed:
            Maps("t", [Down(), later]).find("k")
    assert not isinstance(failed.value, LookupConfigError)
    assert later.asked == []          # a later table must not decide instead
    assert 'down:x lookup error for "k"' in caplog.messages


def test_an_unavailable_table_is_a_retry_error_logged_as_dict_surrogate(tmp_path, caplog):
    from relayd.tables.base import open_table_or_surrogate
    table = open_table_or_surrogate(f"hash:{tmp_path}/missing")
    with caplog.at_level(logging.WARNING, "relayd.tables"):
        with pytest.raises(TemporaryLookupError) as failed:
            Maps("relay_recipient_maps", [table]).find("a@example.com")
    assert not isinstance(failed.value, LookupConfigError)
    assert caplog.messages[0].startswith(f"hash:{tmp_path}/missing is unavailable. open database")


def test_an_empty_result_is_a_configuration_error(caplog):
    maps = Maps("virtual_alias_maps", [open_table("inline:{ a@example.com= }")])
    with caplog.at_level(logging.WARNING, "relayd.tables"):
        with pytest.raises(LookupConfigError):
            maps.find("a@example.com")
    assert caplog.messages == [
        "virtual_alias_maps lookup of a@example.com returns an empty string result",
        "virtual_alias_maps should return NO RESULT in case of NOT FOUND"]
    assert Maps("postmap", maps.tables, checked=False).find("a@example.com") == ""
    assert Maps("postmap", [open_table("inline:{ a=b }")], checked=False).find("") is None


def test_domain_lists_take_an_empty_value_as_listed(tmp_path):
    """match_list() asks a relay_domains table directly: any value, even an
    empty one, lists the domain (no maps_find() empty-result check)."""
    from relayd.config import load_config
    from relayd.domains import DomainList
    config = load_config(main_cf="relay_domains = inline:{ listed.example= }\n")
    relay_domains = DomainList(config, "relay_domains", hostnames=True)
    assert "listed.example" in relay_domains
    assert "other.example" not in relay_domains

"""access(5) search orders (relayd/tables/search.py), checked against the
order access(5) documents and Postfix's own defaults."""
import subprocess

from relayd.config import load_config
from relayd.tables.base import open_table
from relayd.tables.search import (Query, address_queries, host_queries, search,
                                  strip_extension)


class Recording:
    """A real inline table that also records the keys it was asked."""

    def __init__(self, spec):
        self.table = open_table(spec)
        self.fixed = self.table.fixed
        self.asked = []

    def lookup(self, key):
        self.asked.append(key)
        return self.table.lookup(key)


def keys(queries):
    return [q.key for q in queries]


def test_address_order_with_extension_and_parent_domains():
    assert keys(address_queries("user+ext@sub.example.com", delimiters="+")) == [
        "user+ext@sub.example.com", "user@sub.example.com", "sub.example.com", "example.com",
        "com", "user+ext@", "user@"]


def test_address_order_without_parent_domain_matching_uses_dot_names():
    assert keys(address_queries("user@sub.example.com", parent_matches_subdomains=False)) == [
        "user@sub.example.com", "sub.example.com", ".example.com", ".com", "user@"]


def test_extension_splitting_exceptions_as_postfix_split_addr():
    assert strip_extension("owner-list", "-") is None
    assert strip_extension("list-request", "-") is None
    assert strip_extension("MAILER-DAEMON", "-") is None
    assert strip_extension("double-bounce", "-") is None
    assert strip_extension("+x", "+") is None
    assert strip_extension("a-b+c", "+-") == "a"


def test_host_order_name_parents_then_shortened_addresses():
    assert keys(host_queries("mail.example.com", "192.0.2.25")) == [
        "mail.example.com", "example.com", "com", "192.0.2.25", "192.0.2", "192.0", "192"]
    assert keys(host_queries("unknown", "2001:db8::25")) == [
        "unknown", "2001:db8::25", "2001:db8:", "2001:db8", "2001"]


def test_pattern_tables_see_only_the_full_strings():
    pattern = Recording("static:REJECT")
    assert search([pattern], host_queries("mail.example.com", "192.0.2.25")).value == "REJECT"
    assert pattern.asked == ["mail.example.com"]
    pattern = Recording("static:REJECT")
    indexed = Recording("inline:{other=OK}")
    search([indexed, pattern], address_queries("u@example.com"))
    assert indexed.asked == ["u@example.com"] and pattern.asked == ["u@example.com"]


def test_each_query_goes_to_each_table_before_the_next_query():
    first = Recording("inline:{example.com=FIRST}")
    second = Recording("inline:{u@example.com=SECOND}")
    found = search([first, second], address_queries("u@example.com"))
    assert (found.value, found.key) == ("SECOND", "u@example.com")
    assert first.asked == ["u@example.com"] and second.asked == ["u@example.com"]


def test_search_skips_empty_keys():
    table = Recording("inline:{a=b}")
    assert search([table], [Query("", False), Query("a", True)]).value == "b"
    assert table.asked == ["a"]


def test_defaults_match_postfix_postconf():
    """The parameters the access checks read have Postfix's defaults."""
    names = ["parent_domain_matches_subdomains", "smtpd_null_access_lookup_key",
             "access_map_reject_code", "access_map_defer_code", "non_fqdn_reject_code",
             "invalid_hostname_reject_code", "smtpd_reject_unlisted_recipient",
             "smtpd_delay_reject"]
    out = subprocess.run(["postconf", "-d", *names], capture_output=True, text=True,
                         check=True).stdout
    postfix = dict(line.split(" = ", 1) for line in out.splitlines())
    config = load_config(main_cf="")
    for name in names:
        ours = config[name]
        ours = ("yes" if ours else "no") if isinstance(ours, bool) else ours
        ours = ",".join(ours) if isinstance(ours, list) else str(ours)
        assert ours.replace(" ", "") == postfix[name].replace(" ", ""), name

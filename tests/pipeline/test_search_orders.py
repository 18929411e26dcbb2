"""access(5) search orders (relayd/tables/search.py), checked against the
order access(5) documents and Postfix's own defaults."""
import subprocess

from relayd.config import load_config
from relayd.tables.search import address_queries, host_queries, strip_extension


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

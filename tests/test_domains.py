"""Address classes (ADDRESS_CLASS_README), domain lists as Postfix's match_list
reads them, and the one reading of inet_interfaces."""
import os

import pytest

from relayd import Relay
from relayd.config import ConfigError, load_config
from relayd.delivery.route import Router
from relayd.domains import (DEFAULT, LOCAL, RELAY, VIRTUAL_ALIAS, VIRTUAL_MAILBOX, AddressClasses,
                            DomainList, Interfaces)
from relayd.pipeline.context import SessionView
from relayd.pipeline.restrictions import Restrictions
from relayd.smtp import replies as R
from relayd.tables import filetable
from relayd.tables.base import TemporaryLookupError

BASE = ("myhostname = mx.example.com\nmydomain = example.com\nalias_maps =\n"
        "local_recipient_maps =\nmynetworks = 192.0.2.0/24\n")
OUTSIDE = SessionView("198.51.100.7", "unknown", 40000, "client.example", "ESMTP")


def config(text: str = "", **params):
    return load_config(main_cf=BASE + text, **params)


def domains(parameter: str, value: str, hostnames: bool = False, **params):
    return DomainList(config(**{parameter: value, **params}), parameter, hostnames=hostnames)


# --- the classes -------------------------------------------------------------------

def test_each_domain_falls_in_the_first_class_that_lists_it():
    classes = AddressClasses.of(config(
        "mydestination = $myhostname, localhost, both.example\ninet_interfaces = 192.0.2.1\n"
        "proxy_interfaces = 203.0.113.5\nvirtual_alias_domains = alias.example\n"
        "virtual_mailbox_domains = mailbox.example\nrelay_domains = relay.example, both.example\n"))
    assert {domain: classes.classify(domain) for domain in (
        "mx.example.com", "LocalHost.", "both.example", "[192.0.2.1]", "[203.0.113.5]",
        "alias.example", "mailbox.example", "relay.example", "sub.relay.example",
        "elsewhere.example", "[192.0.2.2]")} == {
        "mx.example.com": LOCAL, "LocalHost.": LOCAL, "both.example": LOCAL,
        "[192.0.2.1]": LOCAL, "[203.0.113.5]": LOCAL, "alias.example": VIRTUAL_ALIAS,
        "mailbox.example": VIRTUAL_MAILBOX, "relay.example": RELAY, "sub.relay.example": RELAY,
        "elsewhere.example": DEFAULT, "[192.0.2.2]": DEFAULT}


def test_address_literals_of_this_host_are_local_in_any_spelling():
    classes = AddressClasses.of(config("inet_interfaces = 127.0.0.1, [2001:db8::1]\n"))
    for domain in ("[127.0.0.1]", "[IPv6:2001:db8::1]", "[ipv6:2001:DB8:0:0::1]",
                   "[2001:db8::1]"):
        assert classes.classify(domain) == LOCAL, domain
    for domain in ("[127.0.0.2]", "[ipv6:2001:db8::2]", "[not-an-address]"):
        assert classes.classify(domain) == DEFAULT, domain
    # "all": relayd cannot list the interfaces, so it knows the loopback addresses.
    assert AddressClasses.of(config("inet_interfaces = all\n")).classify("[127.0.0.1]") == LOCAL


def test_authorised_destinations_are_every_class_but_default():
    classes = AddressClasses.of(config("virtual_mailbox_domains = mailbox.example\n"
                                       "relay_domains = relay.example\n"))
    assert classes.authorised("u@mailbox.example") and classes.authorised("u@relay.example")
    assert classes.authorised("postmaster")                      # $myorigin is local
    assert classes.resolve("postmaster").domain == "mx.example.com"
    assert not classes.authorised("u@elsewhere.example")
    assert not classes.authorised("u%elsewhere.example@relay.example")   # sender routing
    assert not classes.authorised("u%elsewhere.example@localhost")       # percent hack: elsewhere
    assert classes.authorised("u%relay.example@localhost")


def test_virtual_mailbox_domains_route_to_virtual_transport_and_validate_recipients():
    cfg = config("virtual_mailbox_domains = mailbox.example\n"
                 "virtual_mailbox_maps = inline:{ ann@mailbox.example=ann/ }\n"
                 "virtual_transport = smtp:[store.internal]:24\n")
    assert Router(cfg).resolve("bob@mailbox.example").nexthop == "[store.internal]:24"
    restrictions = Restrictions(cfg)
    assert restrictions.check_recipient(OUTSIDE, "a@example.org", "ann@mailbox.example") is None
    reply = restrictions.check_recipient(OUTSIDE, "a@example.org", "bob@mailbox.example")
    assert reply == R.R550_USER_UNKNOWN.format("bob@mailbox.example", "Recipient address",
                                               " in virtual mailbox table")


# --- list syntax -------------------------------------------------------------------

def test_names_are_separated_by_commas_or_blanks_and_match_without_case_or_final_dot():
    listed = domains("mydestination", "a.example,b.example  C.Example")
    assert all(d in listed for d in ("a.example", "B.EXAMPLE.", "c.example"))
    assert "d.example" not in listed and "sub.a.example" not in listed


def test_the_first_matching_item_decides_and_bang_inverts_it():
    listed = domains("relay_domains", "!private.example.com, example.com", hostnames=True)
    assert "private.example.com" not in listed and "sub.private.example.com" not in listed
    assert "example.com" in listed and "public.example.com" in listed
    assert "x.example" not in domains("virtual_alias_domains", "!!!x.example")
    assert "x.example" in domains("virtual_alias_domains", "!!x.example")
    with pytest.raises(ConfigError, match="parameter relay_domains: no pattern after '!'"):
        domains("relay_domains", "!")


def test_a_file_name_stands_for_the_items_in_the_file(tmp_path):
    listing = tmp_path / "relay-domains"
    listing.write_text("# the partners\none.example two.example,\nthree.example\n")
    assert all(d in domains("relay_domains", str(listing)) for d in
               ("one.example", "two.example", "three.example"))
    assert "partners" not in domains("relay_domains", str(listing))
    excluded = domains("relay_domains", f"!{listing}, example", hostnames=True)
    assert "two.example" not in excluded and "other.example" in excluded
    with pytest.raises(ConfigError, match=f"parameter mydestination: open file {tmp_path}/none"):
        domains("mydestination", f"localhost {tmp_path}/none")
    # Read when the restriction lists are compiled: a bad list stops startup.
    with pytest.raises(ConfigError, match="parameter virtual_alias_domains: open file"):
        Restrictions(config(f"virtual_alias_domains = {tmp_path}/none\n"))


def test_a_table_item_matches_its_keys_whatever_the_value(tmp_path):
    table = tmp_path / "domains"
    table.write_text("Table.Example  anything\n")
    for value in (f"texthash:{table}", f"proxy:texthash:{table}"):
        listed = domains("virtual_alias_domains", f"{value}, !other.example")
        assert "table.example" in listed and "TABLE.example." in listed
        assert "other.example" not in listed and "sub.table.example" not in listed
    assert "table.example" not in domains("mydestination", f"!texthash:{table}")
    # A bracketed item with a colon is an address literal, not a table.
    assert "[ipv6:::1]" in domains("mydestination", "[IPv6:::1]")


# --- subdomains: parent_domain_matches_subdomains ------------------------------------

def test_relay_domains_match_subdomains_as_postfix(tmp_path):
    table = tmp_path / "relay"
    table.write_text("parent.example OK\n.dotted.example OK\n")
    items = f"example.com .example.net texthash:{table}"
    with_parents = domains("relay_domains", items, hostnames=True)       # the default
    assert all(d in with_parents for d in ("example.com", "a.b.example.com", "x.parent.example"))
    # ".name" is not a subdomain pattern when names match their subdomains (match_hostname()).
    assert not any(d in with_parents for d in ("x.example.net", "x.dotted.example", "xexample.com"))
    without = domains("relay_domains", items, hostnames=True,
                      parent_domain_matches_subdomains="smtpd_access_maps")
    assert all(d in without for d in ("example.com", "x.example.net", "a.x.dotted.example",
                                      "parent.example"))
    assert not any(d in without for d in ("sub.example.com", "example.net", "x.parent.example"))


def test_subdomains_never_match_a_string_list_and_pattern_tables_see_the_whole_name(tmp_path):
    assert "sub.example.com" not in domains("mydestination", "example.com")
    pattern = tmp_path / "relay.regexp"
    pattern.write_text("/^example\\.com$/ OK\n")
    listed = domains("relay_domains", f"regexp:{pattern}", hostnames=True)
    assert "example.com" in listed and "sub.example.com" not in listed


def test_a_class_from_a_table_follows_the_table_and_one_from_names_is_remembered(
        tmp_path, monkeypatch):
    monkeypatch.setattr(filetable, "CHECK_INTERVAL", 0.0)   # stat at every lookup
    table = tmp_path / "relay"
    table.write_text("first.example OK\n")
    classes = AddressClasses.of(config(relay_domains=f"texthash:{table}",
                                       mydestination="mx.example.com"))
    assert classes.classify("first.example") == RELAY
    assert classes.classify("second.example") == DEFAULT
    table.write_text("second.example OK\n")
    os.utime(table, ns=(0, os.stat(table).st_mtime_ns + 10**9))
    assert classes.classify("first.example") == DEFAULT
    assert classes.classify("second.example") == RELAY
    # mydestination lists names only: remembered answers, whatever the spelling asked.
    assert [classes.classify(d) for d in ("MX.example.com.", "mx.example.com")] == [LOCAL, LOCAL]
    assert "mx.example.com" in classes.local and "other.example" not in classes.local


# --- a table that cannot answer ------------------------------------------------------

@pytest.mark.parametrize("parameter", ["mydestination", "virtual_alias_domains",
                                       "virtual_mailbox_domains", "relay_domains"])
def test_a_table_that_cannot_answer_is_a_temporary_error(tmp_path, parameter):
    # A hash: table whose .db file does not exist opens as Postfix's surrogate table.
    classes = AddressClasses.of(config(**{parameter: f"hash:{tmp_path}/missing"}))
    with pytest.raises(TemporaryLookupError, match="unavailable"):
        classes.classify("elsewhere.example")


# --- inet_interfaces -----------------------------------------------------------------

def test_services_without_a_host_listen_on_inet_interfaces(tmp_path):
    master = "smtp inet n - n - - smtpd\n127.0.0.1:2525 inet n - n - - smtpd\n"

    def listeners(main_cf):
        relay = Relay(main_cf=main_cf + f"queue_directory = {tmp_path}/queue\n", master_cf=master)
        return [(name, address) for address, _, name in relay.service_addresses()]
    assert listeners("inet_interfaces = all\n") == [
        ("smtp", ("0.0.0.0", 25)), ("smtp", ("::", 25)), ("127.0.0.1:2525", ("127.0.0.1", 2525))]
    assert listeners("inet_interfaces = loopback-only\n")[:2] == [
        ("smtp", ("127.0.0.1", 25)), ("smtp", ("::1", 25))]
    assert listeners("inet_interfaces = 127.0.0.1, [::1]\ninet_protocols = ipv4\n") == [
        ("smtp", ("127.0.0.1", 25)), ("127.0.0.1:2525", ("127.0.0.1", 2525))]


def test_one_reading_of_inet_interfaces():
    interfaces = Interfaces(config("inet_interfaces = 192.0.2.1 [2001:db8::1] Mail.Example\n"))
    assert interfaces.listen_addresses(["all"]) == ["192.0.2.1", "2001:db8::1", "Mail.Example"]
    assert interfaces.listen_addresses(["ipv6"]) == ["2001:db8::1", "Mail.Example"]
    assert interfaces.own_addresses() == ["192.0.2.1", "2001:db8::1"]
    assert interfaces.hostnames() == ["Mail.Example"]
    assert Interfaces(config("inet_interfaces = all\n")).own_addresses() == ["127.0.0.1", "::1"]
    proxy = Interfaces(config("proxy_interfaces = 203.0.113.5\n"), "proxy_interfaces")
    assert proxy.own_addresses() == ["203.0.113.5"]

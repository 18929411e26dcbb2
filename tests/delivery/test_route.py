"""The router (trivial-rewrite's resolve.c and transport.c): address classes,
relayhost, sender-dependent maps and transport_maps, with real texthash tables."""
import pytest

from relayd.config import load_config
from relayd.delivery.route import (DISCARD, ERROR, LOCAL_AGENT, RETRY, SMTP, Router, Transport)

TRANSPORT = """\
user+tag@example.test    smtp:[192.0.2.1]:2525
user@example.test        smtp:[192.0.2.2]
example.test             smtp:mx.example.test:2525
.example.test            relay:
error.test               error:5.7.1 closed here
bare-error.test          error:
retry.test               retry:4.2.0 try next week
discard.test             discard:
local.test               local:
keep.test                :
hop.test                 :[192.0.2.9]:26
regexp-only.test         smtp:[192.0.2.3]
"""


def router(tmp_path, main_cf="", **params):
    (tmp_path / "transport").write_text(TRANSPORT)
    params.setdefault("relayhost", "[127.0.0.1]:2526")
    return Router(load_config(main_cf=main_cf, myhostname="relay.example.com",
                              recipient_delimiter="+",
                              transport_maps=f"texthash:{tmp_path}/transport", **params))


@pytest.mark.parametrize("address, expected", [
    # The whole address, then without the extension, then the domain.
    ("user+tag@example.test", Transport(SMTP, "smtp", "[192.0.2.1]:2525")),
    ("USER+other@Example.TEST", Transport(SMTP, "smtp", "[192.0.2.2]")),
    ("someone@example.test", Transport(SMTP, "smtp", "mx.example.test:2525")),
    # Parent domains as .parent (transport_maps is not in parent_domain_matches_subdomains).
    ("a@sub.deep.example.test", Transport(SMTP, "relay", "sub.deep.example.test")),
    # Results: transport with empty next hop = the recipient domain; error's default text.
    ("a@error.test", Transport(ERROR, "error", "5.7.1 closed here")),
    ("a@bare-error.test", Transport(ERROR, "error", "Address is undeliverable")),
    ("a@retry.test", Transport(RETRY, "retry", "4.2.0 try next week")),
    ("a@discard.test", Transport(DISCARD, "discard", "discard.test")),
    ("a@local.test", Transport(LOCAL_AGENT, "local", "local.test")),
    # ":" changes nothing (and stops the search); ":nexthop" keeps the transport.
    ("a@keep.test", Transport(SMTP, "smtp", "[127.0.0.1]:2526")),
    ("a@hop.test", Transport(SMTP, "smtp", "[192.0.2.9]:26")),
    # Not in the table: the class's transport and relayhost.
    ("a@elsewhere.test", Transport(SMTP, "smtp", "[127.0.0.1]:2526")),
])
def test_transport_maps_search_order_and_results(tmp_path, address, expected):
    assert router(tmp_path).resolve(address) == expected


def test_parent_domains_match_without_dot_when_transport_maps_is_listed(tmp_path):
    table = tmp_path / "parents"
    table.write_text("example.test  smtp:[192.0.2.7]\n")
    plain = Router(load_config(transport_maps=f"texthash:{table}", relayhost="[127.0.0.1]:1"))
    assert plain.resolve("a@sub.example.test").nexthop == "[127.0.0.1]:1"
    parents = Router(load_config(transport_maps=f"texthash:{table}", relayhost="[127.0.0.1]:1",
                                 parent_domain_matches_subdomains="transport_maps"))
    assert parents.resolve("a@sub.example.test") == Transport(SMTP, "smtp", "[192.0.2.7]")


def test_wildcard_last_and_regexp_tables_see_only_the_whole_address(tmp_path):
    (tmp_path / "re").write_text("/^admin@/  smtp:[192.0.2.5]\n/example\\.test$/  error:5.0.0 no\n")
    (tmp_path / "star").write_text("only.test  smtp:[192.0.2.6]\n*  smtp:[192.0.2.8]:2525\n")
    r = Router(load_config(transport_maps=f"regexp:{tmp_path}/re, texthash:{tmp_path}/star",
                           relayhost="[127.0.0.1]:1"))
    assert r.resolve("admin@any.test").nexthop == "[192.0.2.5]"
    assert r.resolve("bob@example.test").kind == ERROR           # the whole address matched
    assert r.resolve("bob@only.test").nexthop == "[192.0.2.6]"    # the domain, before *
    assert r.resolve("bob@other.test").nexthop == "[192.0.2.8]:2525"


def test_without_relayhost_the_next_hop_is_the_recipient_domain(tmp_path):
    r = Router(load_config(relayhost="", relay_domains="relay.test"))
    assert r.resolve("a@Remote.Test") == Transport(SMTP, "smtp", "remote.test")
    assert r.resolve("a@relay.test") == Transport(SMTP, "relay", "relay.test")
    assert r.resolve("a@x.test", "s@y.test") == Transport(SMTP, "smtp", "x.test")


def test_a_transport_with_its_own_next_hop_overrides_relayhost(tmp_path):
    r = Router(load_config(relayhost="[127.0.0.1]:1", default_transport="smtp:[192.0.2.4]:25"))
    assert r.resolve("a@x.test") == Transport(SMTP, "smtp", "[192.0.2.4]:25")


def test_sender_dependent_relayhost_and_default_transport(tmp_path):
    (tmp_path / "relays").write_text("alice@s.test [192.0.2.10]:2525\n@org.test [192.0.2.11]\n"
                                     "<>  [192.0.2.12]\n@direct.test DUNNO\n")
    (tmp_path / "xports").write_text("@bulk.test slow:\n@plain.test DUNNO\n")
    r = Router(load_config(relayhost="[127.0.0.1]:1", relay_domains="relay.test",
                           sender_dependent_relayhost_maps=f"texthash:{tmp_path}/relays",
                           sender_dependent_default_transport_maps=f"texthash:{tmp_path}/xports",
                           recipient_delimiter="+"))
    assert r.resolve("r@x.test", "alice+news@s.test").nexthop == "[192.0.2.10]:2525"
    assert r.resolve("r@relay.test", "bob@org.test") == Transport(SMTP, "relay", "[192.0.2.11]")
    assert r.resolve("r@x.test", "").nexthop == "[192.0.2.12]"          # the null sender: <>
    assert r.resolve("r@x.test", "bob@direct.test").nexthop == "x.test"  # DUNNO: by MX
    assert r.resolve("r@x.test", "bob@other.test").nexthop == "[127.0.0.1]:1"
    assert r.resolve("r@x.test", "bob@bulk.test") == Transport(None, "slow", "[127.0.0.1]:1")
    assert r.resolve("r@x.test", "bob@plain.test").name == "smtp"
    assert r.resolve("r@relay.test", "bob@bulk.test").name == "relay"   # default class only


def test_a_table_that_cannot_answer_defers_never_routes_elsewhere(tmp_path, caplog):
    r = Router(load_config(relayhost="[127.0.0.1]:1", transport_maps=f"hash:{tmp_path}/missing"))
    assert r.resolve("a@x.test") == Transport(RETRY, "retry", "4.3.0 address resolver failure")
    assert "transport_maps lookup failure" in caplog.text
    r = Router(load_config(relayhost="[127.0.0.1]:1",
                           sender_dependent_relayhost_maps=f"hash:{tmp_path}/missing"))
    assert r.resolve("a@x.test", "s@y.test").kind == RETRY


def test_without_tables_the_class_transport_is_computed_once(tmp_path):
    """The benchmark's path: relayhost set, no routing table: one Transport per class."""
    r = Router(load_config(relayhost="[127.0.0.1]:1"))
    first = r.resolve("a@x.test", "s@y.test")
    assert r.resolve("b@z.test", "t@w.test") is first
    assert not r.transports and not r.sender_relayhosts and not r.sender_transports

"""relayd.dns: the resolver against a real DNS server (Knot, tests/support/dnsserver.py),
a black hole for timeouts, and the name helpers."""
from __future__ import annotations

import time

import gevent
import pytest

from relayd.config import ConfigError, load_config
from relayd.dns import (FOUND, NODATA, NXDOMAIN, DnsPermanentError, DnsTemporaryError, Resolver,
                        dnsbl_name, parse_servers, read_resolv_conf, resolver, reverse_name)
from tests.support.relayd_proc import free_port


def ask(server, **options) -> Resolver:
    options.setdefault("timeout", 2)
    options.setdefault("attempts", 1)
    return Resolver([server.address], **options)


def test_records_of_each_type_are_parsed(dns_server):
    zone = dns_server.add_zone([
        "host A 192.0.2.1", "host A 192.0.2.2", "host AAAA 2001:DB8::1",
        "@ MX 20 MX2", "@ MX 10 mx1.example.TEST.",
        'txt TXT "v=spf1 " "-all"', "1.2.0.192.in-addr PTR Host",
    ])
    r = ask(dns_server)
    a = r.lookup(f"host.{zone}", "A")
    assert (a.status, sorted(a.records), a.name) == (FOUND, ["192.0.2.1", "192.0.2.2"],
                                                    f"host.{zone}")
    assert r.lookup(f"host.{zone}.", "AAAA").records == ("2001:db8::1",)
    assert sorted(r.lookup(zone.upper(), "MX").records) == [(10, "mx1.example.test"),
                                                            (20, f"mx2.{zone}")]
    assert r.lookup(f"txt.{zone}", "TXT").records == ("v=spf1 -all",)
    assert r.lookup(f"1.2.0.192.in-addr.{zone}", "PTR").records == (f"host.{zone}",)
    assert r.lookup(zone, "NS").records == (f"ns.{zone}",)
    assert a and a.ttl == 60


def test_nxdomain_and_nodata_are_answers_not_errors(dns_server):
    zone = dns_server.add_zone(["host A 192.0.2.1"])
    r = ask(dns_server)
    missing = r.lookup(f"nosuch.{zone}", "A")
    assert (missing.status, missing.records, bool(missing)) == (NXDOMAIN, (), False)
    empty = r.lookup(f"host.{zone}", "MX")
    assert (empty.status, empty.records, bool(empty)) == (NODATA, (), False)


def test_null_mx_and_cname_chain(dns_server):
    zone = dns_server.add_zone(["@ MX 0 .", "alias CNAME target", "target A 192.0.2.9"])
    r = ask(dns_server)
    assert r.lookup(zone, "MX").records == ((0, ""),)
    answer = r.lookup(f"alias.{zone}", "A")
    assert answer.records == ("192.0.2.9",)
    assert (answer.name, answer.canonical) == (f"alias.{zone}", f"target.{zone}")


def test_servfail_is_a_temporary_error(dns_server):
    zone = dns_server.add_broken_zone()
    with pytest.raises(DnsTemporaryError, match="SERVFAIL"):
        ask(dns_server).lookup(f"host.{zone}", "A")


def test_refused_is_a_permanent_error(dns_server):
    # The server is authoritative only: a name in none of its zones is refused.
    with pytest.raises(DnsPermanentError, match="REFUSED"):
        ask(dns_server).lookup("host.not-served.test", "A")


def test_a_name_that_cannot_be_asked_is_a_permanent_error(dns_server):
    with pytest.raises(DnsPermanentError):
        ask(dns_server).lookup("a" * 64 + ".test", "A")
    with pytest.raises(DnsPermanentError):
        ask(dns_server).lookup("", "A")


def test_a_large_answer_comes_over_tcp(dns_server):
    # 10 strings of 250 bytes: over the 1232-byte EDNS payload, so the UDP reply is truncated.
    text = "".join(chr(ord("a") + i) * 250 for i in range(10))
    strings = " ".join(f'"{text[i:i + 250]}"' for i in range(0, len(text), 250))
    zone = dns_server.add_zone([f"big TXT {strings}"])
    assert ask(dns_server).lookup(f"big.{zone}", "TXT").records == (text,)


def test_a_server_that_never_answers_times_out(black_hole):
    r = Resolver([black_hole.address], timeout=1, attempts=2)
    with pytest.raises(DnsTemporaryError, match="timeout"):
        r.lookup("host.example.test", "A")
    assert black_hole.queries == 2   # one query per attempt, each waited for


def test_the_next_server_answers_when_the_first_does_not(dns_server, black_hole):
    zone = dns_server.add_zone(["host A 192.0.2.1"])
    r = Resolver([black_hole.address, dns_server.address], timeout=1, attempts=1)
    assert r.lookup(f"host.{zone}", "A").records == ("192.0.2.1",)


def test_a_refused_connection_is_temporary_and_the_next_server_tried(dns_server):
    zone = dns_server.add_zone(["host A 192.0.2.1"])
    closed = ("127.0.0.1", free_port())   # nothing listens: the ICMP error refuses at once
    with pytest.raises(DnsTemporaryError):
        Resolver([closed], timeout=2, attempts=1).lookup(f"host.{zone}", "A")
    r = Resolver([closed, dns_server.address], timeout=2, attempts=1)
    assert r.lookup(f"host.{zone}", "A").records == ("192.0.2.1",)


def test_concurrent_lookups_of_one_question_share_one_query(black_hole):
    r = Resolver([black_hole.address], timeout=1, attempts=1)
    jobs = [gevent.spawn(r.lookup, "host.example.test", "A") for _ in range(5)]
    gevent.joinall(jobs)
    assert all(isinstance(job.exception, DnsTemporaryError) for job in jobs)
    assert black_hole.queries == 1


def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_answers_are_cached_for_their_ttl(dns_server):
    zone = dns_server.add_zone(["host 3 A 192.0.2.1", "slow 3600 A 192.0.2.3"])
    r = ask(dns_server)
    assert r.lookup(f"host.{zone}", "A").records == ("192.0.2.1",)
    assert r.lookup(f"slow.{zone}", "A").records == ("192.0.2.3",)
    dns_server.set_records(zone, ["host 3 A 192.0.2.2", "slow 3600 A 192.0.2.4"])
    # Served now, but the cached answer stands until its TTL (3 s) runs out.
    assert r.lookup(f"host.{zone}", "A").records == ("192.0.2.1",)
    _until(lambda: r.lookup(f"host.{zone}", "A").records == ("192.0.2.2",))
    assert r.lookup(f"slow.{zone}", "A").records == ("192.0.2.3",)
    assert ask(dns_server, cache_size=0).lookup(f"slow.{zone}", "A").records == ("192.0.2.4",)


def test_negative_answers_are_cached_for_the_soa_minimum(dns_server):
    zone = dns_server.add_zone([], ttl=3)
    r = ask(dns_server)
    assert r.lookup(f"new.{zone}", "A").status == NXDOMAIN
    dns_server.set_records(zone, ["new A 192.0.2.5"], ttl=3)
    assert r.lookup(f"new.{zone}", "A").status == NXDOMAIN   # RFC 2308: cached
    _until(lambda: r.lookup(f"new.{zone}", "A").records == ("192.0.2.5",))


def test_the_cache_is_bounded(dns_server):
    zone = dns_server.add_zone(["a A 192.0.2.1", "b A 192.0.2.1", "c A 192.0.2.1"])
    r = ask(dns_server, cache_size=2)
    for name in "abc":
        r.lookup(f"{name}.{zone}", "A")
    dns_server.set_records(zone, ["a A 192.0.2.9", "b A 192.0.2.9", "c A 192.0.2.9"])
    # a, the least recently used, was dropped; b and c are still cached.
    assert [r.lookup(f"{name}.{zone}", "A").records[0] for name in "cba"] == \
        ["192.0.2.1", "192.0.2.1", "192.0.2.9"]


def test_failures_are_not_cached(dns_server, black_hole):
    zone = dns_server.add_zone(["host A 192.0.2.1"])
    r = Resolver([black_hole.address], timeout=1, attempts=1)
    with pytest.raises(DnsTemporaryError):
        r.lookup(f"host.{zone}", "A")
    r.servers = (dns_server.address,)
    assert r.lookup(f"host.{zone}", "A").records == ("192.0.2.1",)


# -- configuration --------------------------------------------------------------------


def test_relayd_dns_servers_is_the_resolver_of_the_process(dns_server):
    config = load_config(relayd_dns_servers=f"{dns_server.spec} [::1]:5353 192.0.2.53",
                         relayd_dns_timeout="3s", relayd_dns_attempts="1")
    r = resolver(config)
    assert r.servers == (dns_server.address, ("::1", 5353), ("192.0.2.53", 53))
    assert (r.timeout, r.attempts) == (3, 1)
    assert resolver(config) is r
    again = load_config(relayd_dns_servers=f"{dns_server.spec} [::1]:5353 192.0.2.53",
                        relayd_dns_timeout="3s", relayd_dns_attempts="1")
    assert resolver(again) is r   # a reload with the same settings keeps the cache


def test_a_bad_server_is_a_configuration_error():
    with pytest.raises(ConfigError, match="relayd_dns_servers.*dns.example.test"):
        resolver(load_config(relayd_dns_servers="dns.example.test:53"))
    for bad in ("127.0.0.1:0", "127.0.0.1:x", "[::1", "::1:53:x"):
        with pytest.raises(ValueError):
            parse_servers([bad])
    assert parse_servers(["::1"]) == (("::1", 53),)


def test_resolv_conf_servers_and_options(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example.test\nnameserver 192.0.2.1\n"
                    "nameserver fe80::1%eth0\nnameserver bogus\noptions timeout:3 attempts:4\n")
    assert read_resolv_conf(str(conf)) == ((("192.0.2.1", 53), ("fe80::1%eth0", 53)), 3, 4)
    assert read_resolv_conf(str(tmp_path / "missing")) == ((("127.0.0.1", 53),), None, None)


# -- names ------------------------------------------------------------------------------


def test_reverse_and_dnsbl_names():
    assert reverse_name("192.0.2.1") == "1.2.0.192.in-addr.arpa"
    assert reverse_name("2001:db8::1") == "1." + "0." * 23 + "8.b.d.0.1.0.0.2.ip6.arpa"
    assert dnsbl_name("127.0.0.2", "zen.example.TEST.") == "2.0.0.127.zen.example.test"
    assert dnsbl_name("2001:db8:1:2::ab", "rbl.test") == \
        "b.a.0.0." + "0." * 12 + "2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.rbl.test"
    assert dnsbl_name("::ffff:192.0.2.7", "rbl.test") == "7.2.0.192.rbl.test"
    with pytest.raises(ValueError):
        dnsbl_name("unknown", "rbl.test")

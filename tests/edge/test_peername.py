"""Client names looked up as smtpd_peer.c does (relayd.edge.peername): the
hosts file, then PTR and forward confirmation against a real DNS server
(Knot, the session's ``dns_server``), and a server that never answers."""
from __future__ import annotations

import logging
import os

import pytest

from relayd import hostsfile
from relayd.config import load_config
from relayd.edge.peername import UNNAMED, PeerName, PeerNames
from relayd.pipeline.context import NAME_FORGED, NAME_OK, NAME_PERM, NAME_TEMP
from tests.support.names import client_address, reverse_zone


@pytest.fixture(scope="module")
def names(dns_server):
    """127.0.53.1 confirmed; .2 a PTR name whose A is another address; .3 no
    PTR; .4 a PTR name with no address; .5 a numeric PTR name; .6 a PTR
    name that does not exist; ::ffff... is IPv6 (no AAAA for its name)."""
    zone = dns_server.add_zone(["ok A 127.0.53.1", "ok AAAA 2001:db8::53",
                                "forged A 192.0.2.1", "noaddr TXT \"nothing\""])
    reverse_zone(dns_server, [f"1 PTR ok.{zone}.", f"2 PTR forged.{zone}.",
                              f"4 PTR noaddr.{zone}.", "5 PTR 192.0.2.7.",
                              f"6 PTR gone.{zone}."])
    # 2001:db8::53 and 2001:db8::54 (IPv6: nibbles under ip6.arpa), both named ok.<zone>.
    nibbles = ".".join("0" * 21)
    reverse_zone(dns_server, [f"3.5.0.{nibbles} PTR ok.{zone}.", f"4.5.0.{nibbles} PTR ok.{zone}."],
                 origin="8.b.d.0.1.0.0.2.ip6.arpa")
    return zone


def peer_names(tmp_path, server, extra: str = "", hosts: str = "") -> PeerNames:
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text(hosts)
    return PeerNames(load_config(main_cf=f"relayd_dns_servers = {server.spec}\n"
                                         f"relayd_hosts_file = {hosts_file}\n"
                                         "relayd_dns_timeout = 1s\nrelayd_dns_attempts = 1\n"
                                         f"{extra}"))


def lookup(names: PeerNames, address: str) -> PeerName:
    return names.wait(names.start(address))


def test_a_confirmed_ptr_name_is_the_client_name(tmp_path, dns_server, names):
    peer = lookup(peer_names(tmp_path, dns_server), client_address(1))
    assert peer == PeerName(f"ok.{names}", NAME_OK, f"ok.{names}", NAME_OK)


@pytest.mark.parametrize("n, reason", [
    (2, ""), (4, ": No address associated with hostname"), (6, ": Name or service not known")])
def test_a_name_that_does_not_confirm_is_unknown_and_the_reverse_name_kept(
        tmp_path, dns_server, names, caplog, n, reason):
    peer = lookup(peer_names(tmp_path, dns_server), client_address(n))
    name = {2: "forged", 4: "noaddr", 6: "gone"}[n]
    assert peer == PeerName("unknown", NAME_FORGED, f"{name}.{names}", NAME_OK)
    assert f"hostname {name}.{names} does not resolve to address {client_address(n)}{reason}" \
        in caplog.messages


def test_an_ipv6_client_is_confirmed_by_aaaa_records(tmp_path, dns_server, names, caplog):
    resolver = peer_names(tmp_path, dns_server)
    assert lookup(resolver, "2001:db8::53") == \
        PeerName(f"ok.{names}", NAME_OK, f"ok.{names}", NAME_OK)
    assert lookup(resolver, "2001:db8::54") == \
        PeerName("unknown", NAME_FORGED, f"ok.{names}", NAME_OK)
    assert f"hostname ok.{names} does not resolve to address 2001:db8::54" in caplog.messages
    resolver = peer_names(tmp_path, dns_server, hosts="::1 ip6-localhost ip6-loopback\n")
    assert resolver.start("::1") == PeerName("ip6-localhost", NAME_OK, "ip6-localhost", NAME_OK)


def test_no_ptr_or_a_numeric_one_is_no_name(tmp_path, dns_server, names, caplog):
    resolver = peer_names(tmp_path, dns_server)
    assert lookup(resolver, client_address(3)) == UNNAMED
    assert lookup(resolver, client_address(5)) == UNNAMED
    assert "numeric hostname: 192.0.2.7" in caplog.messages


def test_the_hosts_file_answers_first_without_dns(tmp_path, black_hole):
    # As the C library's "files dns": a name and address the file has need no query.
    resolver = peer_names(tmp_path, black_hole, hosts="127.0.0.1 localhost\n")
    started = resolver.start("127.0.0.1")
    assert started == PeerName("localhost", NAME_OK, "localhost", NAME_OK)   # at once
    assert black_hole.queries == 0


def test_a_hosts_file_name_holds_until_the_file_changes(tmp_path, black_hole, monkeypatch):
    monkeypatch.setattr(hostsfile, "RECHECK_INTERVAL", 0.0)   # stat at every lookup
    resolver = peer_names(tmp_path, black_hole, hosts="127.0.0.1 localhost\n")
    assert resolver.start("127.0.0.1") == PeerName("localhost", NAME_OK, "localhost", NAME_OK)
    assert resolver.start("127.0.0.1").name == "localhost"   # again, from memory
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 renamed.example\n")
    os.utime(hosts, ns=(0, os.stat(hosts).st_mtime_ns + 10**9))
    assert resolver.start("127.0.0.1") == \
        PeerName("renamed.example", NAME_OK, "renamed.example", NAME_OK)
    assert black_hole.queries == 0


def test_a_hosts_file_name_is_confirmed_by_the_hosts_file(tmp_path, dns_server, names, caplog):
    hosts = f"127.0.53.7 mine.{names}\n192.0.2.9 mine.{names}\n127.0.53.8 ok.{names}\n"
    resolver = peer_names(tmp_path, dns_server, hosts=hosts)
    assert lookup(resolver, client_address(7)) == \
        PeerName(f"mine.{names}", NAME_OK, f"mine.{names}", NAME_OK)
    assert lookup(resolver, client_address(8)) == \
        PeerName(f"ok.{names}", NAME_OK, f"ok.{names}", NAME_OK)
    # 127.0.53.1's PTR name comes from DNS, but the file has that name (with
    # 127.0.53.8 only): DNS's A record is not asked, so the name does not confirm.
    assert lookup(resolver, client_address(1)) == \
        PeerName("unknown", NAME_FORGED, f"ok.{names}", NAME_OK)
    assert f"hostname ok.{names} does not resolve to address 127.0.53.1" in caplog.messages


def test_lookup_off_names_no_one(tmp_path, black_hole):
    resolver = peer_names(tmp_path, black_hole, "smtpd_peername_lookup = no\n",
                          hosts="127.0.0.1 localhost\n")
    assert resolver.start("127.0.0.1") is UNNAMED
    assert black_hole.queries == 0


def test_dns_that_does_not_answer_is_a_temporary_failure(tmp_path, black_hole):
    peer = lookup(peer_names(tmp_path, black_hole), client_address(1))
    assert peer == PeerName("unknown", NAME_TEMP, "unknown", NAME_TEMP)


def test_the_wait_is_bounded(tmp_path, black_hole, caplog):
    # The resolver would wait 5 s; the session waits relayd_peername_lookup_timeout.
    resolver = peer_names(tmp_path, black_hole, "relayd_dns_timeout = 5s\n"
                                                "relayd_peername_lookup_timeout = 1s\n")
    peer = lookup(resolver, client_address(1))
    assert peer == PeerName("unknown", NAME_TEMP, "unknown", NAME_TEMP)
    assert f"{client_address(1)}: client name lookup unfinished after 1s" in caplog.messages

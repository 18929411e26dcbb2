"""The servers of a next hop (smtp_addr.c) from a real DNS server: MX order,
implicit MX, null MX, mail loops, DNS failures."""
import pytest

from relayd.config import load_config
from relayd.delivery.mx import Server, ServerFinder
from relayd.delivery.route import parse_nexthop
from relayd.queue.outcome import BOUNCED, DEFERRED


def finder(spec, **params):
    return ServerFinder(load_config(relayd_dns_servers=spec, relayd_dns_timeout="1s",
                                    relayd_dns_attempts=1, relayd_dns_cache_size=0, **params))


def test_mx_hosts_in_preference_order_with_their_addresses(dns_server):
    zone = dns_server.add_zone(["@ MX 20 b", "@ MX 10 a", "@ MX 30 c", "a A 127.0.0.2",
                                "a A 127.0.0.4", "b A 127.0.0.3", "c AAAA ::1"])
    found = finder(dns_server.spec).servers(parse_nexthop(f"{zone}:2525"))
    assert [(s.host, s.pref) for s in found.servers] == [
        (f"a.{zone}", 10), (f"a.{zone}", 10), (f"b.{zone}", 20), (f"c.{zone}", 30)]
    assert {s.address for s in found.servers[:2]} == {"127.0.0.2", "127.0.0.4"}
    assert {s.port for s in found.servers} == {2525}
    only_v4 = finder(dns_server.spec, inet_protocols="ipv4").servers(parse_nexthop(zone))
    assert [s.address for s in only_v4.servers if s.pref == 30] == []


def test_equal_preferences_are_shuffled(dns_server):
    zone = dns_server.add_zone(["@ MX 10 a", "@ MX 10 b", "a A 127.0.0.2", "b A 127.0.0.3"])
    f = finder(dns_server.spec)
    firsts = {f.servers(parse_nexthop(zone)).servers[0].host for _ in range(40)}
    assert firsts == {f"a.{zone}", f"b.{zone}"}


def test_bracketed_and_numeric_next_hops_need_no_dns(black_hole):
    f = finder(black_hole.spec)
    assert f.servers(parse_nexthop("[127.0.0.1]:2526")).servers == (
        Server("127.0.0.1", "127.0.0.1", 2526),)
    assert f.servers(parse_nexthop("[mail.example.test]")).servers == (
        Server("mail.example.test", None, 25),)
    assert black_hole.queries == 0


@pytest.mark.parametrize("records, status, dsn, text", [
    (["@ MX 0 ."], BOUNCED, "5.1.0", "Domain {zone} does not accept mail (nullMX)"),
    (["@ MX 10 mx", "mx TXT nothing"], BOUNCED, "5.4.4",
     "Host or domain name not found. Name service error for name=mx.{zone} type=A: "
     "Host found but no data record of requested type"),
])
def test_no_server(dns_server, records, status, dsn, text):
    zone = dns_server.add_zone(records)
    found = finder(dns_server.spec).servers(parse_nexthop(zone))
    assert found.servers == ()
    assert (found.failure.status, found.failure.dsn, found.failure.reason) == (
        status, dsn, text.format(zone=zone))


def test_dns_that_does_not_answer_is_a_temporary_failure(black_hole):
    found = finder(black_hole.spec).servers(parse_nexthop("example.test:2525"))
    assert (found.failure.status, found.failure.dsn, found.failure.reason) == (
        DEFERRED, "4.4.3", "Host or domain name not found. Name service error for "
                           "name=example.test type=MX: Host not found, try again")


def test_servfail_is_a_temporary_failure(dns_server):
    zone = dns_server.add_broken_zone()
    found = finder(dns_server.spec).servers(parse_nexthop(zone))
    assert (found.failure.status, found.failure.dsn) == (DEFERRED, "4.4.3")


def test_this_host_as_mx_cuts_the_list_and_stops_fallback(dns_server):
    """Loop detection is for port 25, as in Postfix (inet_interfaces = all:
    this host is 127.0.0.1 and ::1)."""
    zone = dns_server.add_zone(["@ MX 10 better", "@ MX 20 me", "@ MX 30 worse",
                                "better A 127.0.0.2", "me A 127.0.0.1", "worse A 127.0.0.3"])
    f = finder(dns_server.spec)
    found = f.servers(parse_nexthop(zone))
    assert [s.host for s in found.servers] == [f"better.{zone}"] and found.final
    other_port = f.servers(parse_nexthop(f"{zone}:2525"))
    assert len(other_port.servers) == 3 and not other_port.final


@pytest.mark.parametrize("records, status, dsn, text", [
    (["@ MX 10 me", "me A 127.0.0.1"], BOUNCED, "5.4.6", "mail for {zone} loops back to myself"),
    (["@ A 127.0.0.1"], BOUNCED, "5.4.6", "mail for {zone} loops back to myself"),
    (["@ MX 10 ghost", "@ MX 20 me", "me A 127.0.0.1"], DEFERRED, "4.4.4",
     "unable to find primary relay for {zone}"),
])
def test_mail_that_loops(dns_server, records, status, dsn, text):
    zone = dns_server.add_zone(records)
    found = finder(dns_server.spec).servers(parse_nexthop(zone))
    assert found.servers == () and found.final
    assert (found.failure.status, found.failure.dsn, found.failure.reason) == (
        status, dsn, text.format(zone=zone))


def test_a_bad_dns_server_list_stops_startup():
    from relayd.config import ConfigError
    with pytest.raises(ConfigError) as info:
        finder("127.0.0.1:99999")
    assert info.value.parameter == "relayd_dns_servers"

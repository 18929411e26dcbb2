"""The smtp agent walking the servers of an MX next hop (smtp_connect.c): the
address and session limits, and no fallback relay where this host is an MX
host. Real DNS (Knot), real sinks on loopback addresses."""
import logging

import pytest

from relayd.config import load_config
from relayd.delivery.route import parse_nexthop
from relayd.delivery.smtp import SmtpDeliveryAgent
from relayd.queue.outcome import BOUNCED, DEFERRED
from tests.delivery.conftest import log_lines, request
from tests.support.relayd_proc import free_port
from tests.support.sink import Sink


def agent(dns_server, **params):
    return SmtpDeliveryAgent(load_config(
        myhostname="relay.example.com", relayd_dns_servers=dns_server.spec,
        relayd_dns_timeout="1s", relayd_dns_attempts=1, smtp_tls_security_level="none",
        smtp_connect_timeout="5s", **params))


@pytest.fixture
def busy_sinks():
    """Three sinks on 127.0.0.2-4, one port, each answering RCPT with 451."""
    first = Sink(host="127.0.0.2").start()
    sinks = [first]
    try:
        for host in ("127.0.0.3", "127.0.0.4"):
            sinks.append(Sink(host=host, port=first.port).start())
    except OSError:
        for s in sinks:
            s.stop()
        pytest.skip("the port is taken on another loopback address")
    for s in sinks:
        s.reply_for_rcpt["bob@x.test"] = "451 4.7.1 busy"
    yield sinks
    for s in sinks:
        s.stop()


def test_address_limit(dns_server, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()   # nothing listens on it, on any of the addresses
    zone = dns_server.add_zone(["@ MX 10 a", "@ MX 20 b", "@ MX 30 c",
                                "a A 127.0.0.2", "b A 127.0.0.3", "c A 127.0.0.4"])
    outcome = agent(dns_server, smtp_mx_address_limit=2).deliver(
        parse_nexthop(f"{zone}:{port}"), request("bob@x.test")).outcomes[0]
    tried = [line for line in log_lines(caplog, "relayd.smtp") if line.startswith("connect to ")]
    assert tried == [f"connect to a.{zone}[127.0.0.2]:{port}: Connection refused",
                     f"connect to b.{zone}[127.0.0.3]:{port}: Connection refused"]
    assert (outcome.status, outcome.reason) == (
        DEFERRED, f"connect to b.{zone}[127.0.0.3]:{port}: Connection refused")


def test_session_limit_and_the_last_servers_word(dns_server, busy_sinks, caplog):
    caplog.set_level(logging.INFO)
    zone = dns_server.add_zone(["@ MX 10 a", "@ MX 20 b", "@ MX 30 c",
                                "a A 127.0.0.2", "b A 127.0.0.3", "c A 127.0.0.4"])
    outcome = agent(dns_server).deliver(parse_nexthop(f"{zone}:{busy_sinks[0].port}"),
                                        request("bob@x.test", qid="QID7")).outcomes[0]
    assert [s.sessions for s in busy_sinks] == [1, 1, 0]     # smtp_mx_session_limit = 2
    lines = log_lines(caplog, "relayd.smtp")
    assert (f"QID7: host a.{zone}[127.0.0.2] said: 451 4.7.1 busy (in reply to RCPT TO "
            "command)") in lines
    assert (outcome.status, outcome.relay) == (DEFERRED, f"b.{zone}[127.0.0.3]:{busy_sinks[0].port}")
    assert lines[-1].endswith(f"dsn=4.7.1, status=deferred (host b.{zone}[127.0.0.3] said: "
                              "451 4.7.1 busy (in reply to RCPT TO command))")


def test_no_fallback_relay_for_a_destination_this_host_is_mx_for(dns_server, sink):
    """This host (127.0.0.1) is the second MX of the zone and the better one has
    no address: the mail waits (4.4.4), the fallback relay is not tried. Port 25,
    as Postfix detects loops only there; no connection is made at all."""
    zone = dns_server.add_zone(["@ MX 10 better", "@ MX 20 me", "me A 127.0.0.1"])
    relayd_agent = agent(dns_server, smtp_fallback_relay=f"[127.0.0.1]:{sink.port}")
    outcome = relayd_agent.deliver(parse_nexthop(zone), request("bob@x.test")).outcomes[0]
    assert (outcome.status, outcome.dsn, outcome.reason) == (
        DEFERRED, "4.4.4", f"unable to find primary relay for {zone}")
    assert sink.sessions == 0
    other = relayd_agent.deliver(parse_nexthop(f"[127.0.0.2]:{free_port()}"),
                                 request("bob@x.test")).outcomes[0]
    assert other.relay == f"127.0.0.1[127.0.0.1]:{sink.port}"    # elsewhere it is
    assert sink.wait_for(1)


def test_a_relayhost_that_does_not_resolve_defers_as_a_configuration_problem(dns_server, caplog):
    zone = dns_server.add_zone(["www A 127.0.0.9"])
    relayhost = f"nowhere.{zone}:2525"
    relayd_agent = agent(dns_server, relayhost=relayhost)
    outcome = relayd_agent.deliver(parse_nexthop(relayhost), request("bob@x.test")).outcomes[0]
    assert (outcome.status, outcome.dsn) == (DEFERRED, "4.3.5")      # Postfix: not a bounce
    assert outcome.reason == (f"Host or domain name not found. Name service error for "
                              f"name=nowhere.{zone} type=A: Host not found")
    assert "relayhost configuration problem" in caplog.text
    # The same next hop as a recipient's domain (not named by the admin) bounces.
    other = agent(dns_server).deliver(parse_nexthop(relayhost), request("bob@x.test")).outcomes[0]
    assert (other.status, other.dsn) == (BOUNCED, "5.4.4")

"""MX delivery through a real relayd, a real DNS server (Knot, the session's
``dns_server``) and real sinks on other loopback addresses. Each test routes
its own zone by MX with transport_maps (``ZONE smtp:ZONE:PORT``: the MX
hosts of ZONE on PORT, never port 25); everything else, the DSNs included,
goes to the relayhost sink."""
import smtplib

import pytest

from tests.support.dnsserver import DnsServer
from tests.support.sink import Sink

DNS = "relayd_dns_timeout = 1s\nrelayd_dns_attempts = 1\n"


def send(relayd, sender, recipients):
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.sendmail(sender, recipients, b"Subject: mx\r\n\r\nhello\r\n")


def line_for(log, recipient):
    return next(line for line in log.splitlines() if f"to=<{recipient}>" in line and "status=" in line)


@pytest.fixture
def mx_sinks():
    """Sinks on 127.0.0.2 and 127.0.0.3, on one port (the next hop's)."""
    first = Sink(host="127.0.0.3").start()
    second = Sink(host="127.0.0.2", port=first.port)
    sinks = [first]
    try:
        second.start()
        sinks.append(second)
    except OSError:
        pytest.skip("the port is taken on 127.0.0.2")
    yield {"127.0.0.3": first, "127.0.0.2": second}
    for s in sinks:
        s.stop()


def by_mx(relayd_factory, tmp_path, zone, port, extra="", dns_spec=None):
    table = tmp_path / "transport"
    table.write_text(f"{zone}  smtp:{zone}:{port}\n")
    return relayd_factory(f"transport_maps = texthash:{table}\nrelayd_dns_servers = {dns_spec}\n"
                          + DNS + extra)


def test_preferred_mx_down_delivers_to_the_next(relayd_factory, dns_server, tmp_path, mx_sinks):
    port = mx_sinks["127.0.0.3"].port
    mx_sinks["127.0.0.2"].stop()      # mx1, the preferred host, is down
    zone = dns_server.add_zone(["@ MX 10 mx1", "@ MX 20 mx2",
                                "mx1 A 127.0.0.2", "mx2 A 127.0.0.3"])
    relayd = by_mx(relayd_factory, tmp_path, zone, port, dns_spec=dns_server.spec)
    send(relayd, "alice@example.org", [f"bob@{zone}"])
    (msg,) = mx_sinks["127.0.0.3"].wait_for(1)
    assert msg.recipients == [f"bob@{zone}"]
    log = relayd.wait_log("status=sent")
    assert f"connect to mx1.{zone}[127.0.0.2]:{port}: Connection refused" in log
    line = line_for(log, f"bob@{zone}")
    assert f"relay=mx2.{zone}[127.0.0.3]:{port}," in line and "dsn=2.0.0, status=sent (250 " in line


def test_preferred_mx_answering_4xx_passes_to_the_next(relayd_factory, dns_server, tmp_path,
                                                       mx_sinks):
    port = mx_sinks["127.0.0.3"].port
    zone = dns_server.add_zone(["@ MX 5 mx1", "@ MX 7 mx2",
                                "mx1 A 127.0.0.2", "mx2 A 127.0.0.3"])
    mx_sinks["127.0.0.2"].reply_for_rcpt[f"bob@{zone}"] = "451 4.3.0 greylisted"
    relayd = by_mx(relayd_factory, tmp_path, zone, port, dns_spec=dns_server.spec)
    send(relayd, "alice@example.org", [f"bob@{zone}"])
    (msg,) = mx_sinks["127.0.0.3"].wait_for(1)
    log = relayd.wait_log("status=sent")
    assert (f"host mx1.{zone}[127.0.0.2] said: 451 4.3.0 greylisted (in reply to RCPT TO "
            "command)") in log
    assert f"relay=mx2.{zone}[127.0.0.3]:{port}," in line_for(log, f"bob@{zone}")
    assert not mx_sinks["127.0.0.2"].messages


def test_no_mx_delivers_to_the_domain_address(relayd_factory, dns_server, tmp_path, mx_sinks):
    port = mx_sinks["127.0.0.2"].port
    zone = dns_server.add_zone(["@ A 127.0.0.2"])
    relayd = by_mx(relayd_factory, tmp_path, zone, port, dns_spec=dns_server.spec)
    send(relayd, "alice@example.org", [f"bob@{zone}"])
    (msg,) = mx_sinks["127.0.0.2"].wait_for(1)
    assert msg.recipients == [f"bob@{zone}"]
    assert f"relay={zone}[127.0.0.2]:{port}," in line_for(relayd.wait_log("status=sent"),
                                                        f"bob@{zone}")


def test_null_mx_bounces(relayd_factory, dns_server, tmp_path, sink):
    zone = dns_server.add_zone(["@ MX 0 ."])
    relayd = by_mx(relayd_factory, tmp_path, zone, 2525, dns_spec=dns_server.spec)
    send(relayd, "alice@example.org", [f"bob@{zone}"])
    log = relayd.wait_log("sender non-delivery notification")
    line = line_for(log, f"bob@{zone}")
    assert ", relay=none, " in line
    assert line.endswith(f"dsn=5.1.0, status=bounced (Domain {zone} does not accept mail (nullMX))")
    (dsn,) = sink.wait_for(1)
    assert dsn.recipients == ["alice@example.org"]


def test_unknown_domain_bounces(relayd_factory, dns_server, tmp_path, sink):
    zone = dns_server.add_zone(["www A 127.0.0.9"])
    relayd = by_mx(relayd_factory, tmp_path, f"nowhere.{zone}", 2525, dns_spec=dns_server.spec)
    send(relayd, "alice@example.org", [f"bob@nowhere.{zone}"])
    line = line_for(relayd.wait_log("sender non-delivery notification"), f"bob@nowhere.{zone}")
    assert line.endswith(f"dsn=5.4.4, status=bounced (Host or domain name not found. Name service "
                         f"error for name=nowhere.{zone} type=A: Host not found)")


def test_dns_that_does_not_answer_defers_then_delivers(relayd_factory, black_hole, tmp_path,
                                                        mx_sinks):
    """The black hole is a real socket that never answers; then a real DNS
    server takes its address and the deferred mail goes out at the flush."""
    port = mx_sinks["127.0.0.2"].port
    zone = "late.test"
    relayd = by_mx(relayd_factory, tmp_path, zone, port, dns_spec=black_hole.spec,
                   extra="minimal_backoff_time = 300s\nmaximal_backoff_time = 600s\n")
    send(relayd, "alice@example.org", [f"bob@{zone}"])
    line = line_for(relayd.wait_log("status=deferred"), f"bob@{zone}")
    assert line.endswith(f"dsn=4.4.3, status=deferred (Host or domain name not found. Name "
                         f"service error for name={zone} type=MX: Host not found, try again)")
    assert black_hole.queries >= 1
    black_hole.stop()
    late = DnsServer(tmp_path / "late-dns")
    late.port = black_hole.port      # the same address now answers
    late.start()
    try:
        late.add_zone(["@ MX 10 mx", "mx A 127.0.0.2"], origin=zone)
        assert relayd.command("flush").returncode == 0
        (msg,) = mx_sinks["127.0.0.2"].wait_for(1, timeout=15)
        assert msg.recipients == [f"bob@{zone}"]
        assert f"relay=mx.{zone}[127.0.0.2]:{port}," in relayd.wait_log("status=sent")
    finally:
        late.stop()


def test_bracketed_relayhost_asks_no_dns(relayd_factory, black_hole, sink):
    """The benchmark's path: relayhost = [127.0.0.1]:port asks the DNS nothing."""
    relayd = relayd_factory(f"relayd_dns_servers = {black_hole.spec}\n" + DNS)
    send(relayd, "alice@example.org", ["bob@a.test"])
    sink.wait_for(1)
    relayd.wait_log("status=sent")
    assert black_hole.queries == 0

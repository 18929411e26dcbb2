"""Client names through a real relayd process: smtplib clients bound to
127.0.53.N (tests/support/names.py), a real DNS server (Knot) answering
their PTR and A questions, the recording sink as smart host.

relayd asks only the servers a test gives it (relayd_dns_servers) and reads
the hosts file the test writes (relayd_hosts_file), which names 127.0.0.1
``localhost`` as /etc/hosts does.
"""
from __future__ import annotations

import re
import select
import smtplib
import time
from pathlib import Path

import pytest

from relayd.smtp.replies import R450_UNKNOWN_CLIENT
from tests.support.names import client_address, connect_from, reverse_zone, smtp_from

MESSAGE = b"Subject: names\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def zone(dns_server):
    """127.0.53.1 is ok.<zone> (confirmed); 127.0.53.2's PTR name forged.<zone>
    has another address; 127.0.53.3 has no PTR."""
    zone = dns_server.add_zone(["ok A 127.0.53.1", "forged A 192.0.2.1"])
    reverse_zone(dns_server, [f"1 PTR ok.{zone}.", f"2 PTR forged.{zone}."])
    return zone


def names_relayd(relayd_factory, tmp_path: Path, server, extra: str = "",
                 name: str = "relayd"):
    """A relayd that looks client names up: the test's hosts file, then ``server``."""
    hosts = tmp_path / f"{name}.hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    return relayd_factory(f"smtpd_peername_lookup = yes\nrelayd_hosts_file = {hosts}\n"
                          f"relayd_dns_servers = {server.spec}\n"
                          f"relayd_dns_timeout = 1s\nrelayd_dns_attempts = 1\n{extra}",
                          name=name)


def rcpt_reply(relayd, address: str) -> tuple[int, bytes]:
    """The reply to RCPT TO:<b@relay.example> of a client on ``address``."""
    with smtp_from(address, relayd.port) as client:
        client.ehlo("client.test")
        client.mail("a@sender.test")
        return client.rcpt("b@relay.example")


def test_a_confirmed_name_is_logged_checked_and_in_received(relayd_factory, tmp_path, sink,
                                                           dns_server, zone):
    name = f"ok.{zone}"
    table = f"inline:{{ {{{name} = REJECT by name}} }}"
    relayd = names_relayd(relayd_factory, tmp_path, dns_server,
                          f"smtpd_recipient_restrictions = check_client_access {table}\n")
    assert rcpt_reply(relayd, client_address(1)) == (
        554, f"5.7.1 <{name}[127.0.53.1]>: Client host rejected: by name".encode())
    log = relayd.wait_log(f"disconnect from {name}[127.0.53.1]")
    assert f"connect from {name}[127.0.53.1]" in log
    assert f"NOQUEUE: reject: RCPT from {name}[127.0.53.1]: 554 5.7.1" in log

    relayd = names_relayd(relayd_factory, tmp_path, dns_server, name="second")
    with smtp_from(client_address(1), relayd.port) as client:
        client.sendmail("a@sender.test", ["b@relay.example"], MESSAGE)
    received = sink.wait_for(1)[0].data.decode()
    assert re.search(rf"Received: from [^ ]+ \({re.escape(name)} \[127\.0\.53\.1\]\)", received)
    assert re.search(rf": client={re.escape(name)}\[127\.0\.53\.1\]", relayd.log())


def test_a_ptr_that_does_not_confirm_is_unknown_with_its_reverse_name_kept(
        relayd_factory, tmp_path, dns_server, zone):
    forged = f"forged.{zone}"
    table = f"inline:{{ {{{forged} = REJECT unverified}} }}"
    relayd = names_relayd(relayd_factory, tmp_path, dns_server,
                          "smtpd_client_restrictions = reject_unknown_reverse_client_hostname, "
                          f"check_reverse_client_hostname_access {table}\n")
    assert rcpt_reply(relayd, client_address(2)) == (
        554, f"5.7.1 <{forged}>: Unverified Client host rejected: unverified".encode())
    log = relayd.wait_log("disconnect from unknown[127.0.53.2]")
    assert f"warning: hostname {forged} does not resolve to address 127.0.53.2" in log
    assert "connect from unknown[127.0.53.2]" in log


@pytest.mark.parametrize("n", [2, 3])
def test_reject_unknown_client_hostname(relayd_factory, tmp_path, dns_server, zone, n):
    relayd = names_relayd(relayd_factory, tmp_path, dns_server,
                          "smtpd_client_restrictions = reject_unknown_client_hostname\n"
                          "unknown_client_reject_code = 550\n")
    assert rcpt_reply(relayd, client_address(n)) == (
        550, f"5.7.25 Client host rejected: cannot find your hostname, [127.0.53.{n}]".encode())
    assert rcpt_reply(relayd, client_address(1))[0] == 250


def test_dns_down_defers_and_loses_nothing(relayd_factory, tmp_path, sink, black_hole):
    # The name lookup times out: a temporary failure, 450 whatever the reject
    # code (never a 5xx, never an accept); the client keeps its message, and
    # the clients the hosts file names are served as usual.
    relayd = names_relayd(relayd_factory, tmp_path, black_hole,
                          "smtpd_client_restrictions = reject_unknown_client_hostname\n"
                          "unknown_client_reject_code = 550\n")
    assert rcpt_reply(relayd, client_address(1)) == \
        (450, str(R450_UNKNOWN_CLIENT.format("127.0.53.1"))[4:].encode())
    log = relayd.wait_log("disconnect from unknown[127.0.53.1]")
    assert "connect from unknown[127.0.53.1]" in log
    with smtp_from("127.0.0.1", relayd.port) as client:
        assert client.sendmail("a@sender.test", ["b@relay.example"], MESSAGE) == {}
    assert [t.recipients for t in sink.wait_for(1)] == [["b@relay.example"]]


def test_a_client_deferred_while_dns_fails_is_accepted_once_it_answers(
        relayd_factory, tmp_path, sink, dns_server, zone):
    # 127.0.53.9's PTR name lives in a zone the server cannot load (SERVFAIL):
    # its forward confirmation fails temporarily, RCPT gets 450. Once the zone
    # is repaired the client's retry is accepted and the message delivered.
    broken = dns_server.add_broken_zone()
    reverse_zone(dns_server, [f"1 PTR ok.{zone}.", f"2 PTR forged.{zone}.",
                              f"9 PTR host.{broken}."])
    relayd = names_relayd(relayd_factory, tmp_path, dns_server,
                          "smtpd_client_restrictions = reject_unknown_client_hostname\n"
                          "unknown_client_reject_code = 550\n")
    with smtp_from(client_address(9), relayd.port) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("a@sender.test", ["b@relay.example"], MESSAGE)
    assert refused.value.recipients["b@relay.example"][0] == 450
    relayd.wait_log(f"warning: hostname host.{broken} does not resolve to address 127.0.53.9: "
                    "Temporary failure in name resolution")
    dns_server.set_records(broken, ["host A 127.0.53.9"])
    with smtp_from(client_address(9), relayd.port) as client:
        assert client.sendmail("a@sender.test", ["b@relay.example"], MESSAGE) == {}
    assert [t.recipients for t in sink.wait_for(1)] == [["b@relay.example"]]
    assert f"connect from host.{broken}[127.0.53.9]" in relayd.log()


def test_a_slow_resolver_does_not_hold_other_sessions(relayd_factory, tmp_path, sink,
                                                     black_hole):
    # One client's greeting waits for its name (the resolver waits 3 s for a
    # server that never answers); meanwhile another client, named by the hosts
    # file, is served from greeting to queued message.
    relayd = names_relayd(relayd_factory, tmp_path, black_hole, "relayd_dns_timeout = 3s\n")
    waiting = connect_from(client_address(1), relayd.port)
    try:
        deadline = time.monotonic() + 10
        while black_hole.queries == 0:     # its PTR question is out
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with smtp_from("127.0.0.1", relayd.port) as client:
            assert client.sendmail("a@sender.test", ["b@relay.example"], MESSAGE) == {}
        assert len(sink.wait_for(1)) == 1
        readable, _, _ = select.select([waiting], [], [], 0)
        assert readable == []                # still no greeting for the first one
    finally:
        waiting.close()


def hosts_file_names_127_0_0_1() -> bool:
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        return False
    return any(line.split("#")[0].split()[:1] == ["127.0.0.1"] for line in lines)


@pytest.mark.parametrize("hosts_file", ["test", "/etc/hosts"])
def test_the_benchmark_path_makes_no_dns_query(relayd_factory, tmp_path, sink, black_hole,
                                               hosts_file):
    # The default configuration (smtpd_peername_lookup = yes) and clients on
    # 127.0.0.1, as the benchmark runs: the hosts file names them, and not one
    # question reaches the DNS server, whose every query the black hole counts.
    if hosts_file == "/etc/hosts" and not hosts_file_names_127_0_0_1():
        pytest.skip("/etc/hosts does not list 127.0.0.1")
    relayd = names_relayd(relayd_factory, tmp_path, black_hole,
                          "" if hosts_file == "test" else "relayd_hosts_file = /etc/hosts\n")
    for _ in range(3):
        with smtp_from("127.0.0.1", relayd.port) as client:
            assert client.sendmail("a@sender.test", ["b@relay.example"], MESSAGE) == {}
    sink.wait_for(3)
    assert re.search(r"connect from [^\[]+\[127\.0\.0\.1\]", relayd.log())
    assert "connect from unknown[127.0.0.1]" not in relayd.log()
    assert black_hole.queries == 0

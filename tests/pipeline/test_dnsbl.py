"""The DNS list checks (relayd/checks/dnsbl.py) in relayd's own dialogue
(relayd.testing.PluginHarness), against a real DNS server (Knot, the session's
``dns_server``): reply texts, classes, patterns, IPv6, allowlists, failures."""
from __future__ import annotations

import logging

import pytest

from relayd.checks.dnsbl import AddressPattern
from relayd.config import ConfigError
from relayd.smtp.replies import (R450_ACCESS_DEFERRED, R450_DEFER, R451_CONFIG_ERROR,
                                 R554_RELAY_DENIED, Reply)
from relayd.testing import PluginHarness, parse_replies

SCRIPT = (b"EHLO {helo}\r\nMAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nQUIT\r\n")


def rcpt_reply(dns_server, main_cf: str, *, client_addr="192.0.2.1", client_name="unknown",
               helo="client.test", sender="a@sender.test", rcpt="b@relay.example") -> Reply:
    """The reply to RCPT TO (restrictions are delayed to RCPT, Postfix's default)."""
    harness = PluginHarness(f"relayd_dns_servers = {dns_server.spec}\n{main_cf}",
                            client_addr=client_addr, client_name=client_name)
    script = SCRIPT.replace(b"{helo}", helo.encode()).replace(b"{sender}", sender.encode())
    return parse_replies(harness.dialogue(script.replace(b"{rcpt}", rcpt.encode())))[3]


def blocked(what: str, cls: str, zone: str, reason: str, code: int = 554) -> Reply:
    text = f"Service unavailable; {cls} [{what}] blocked using {zone}"
    return Reply(code, f"{code // 100}.7.1", f"{text}; {reason}" if reason else text)


OK = Reply(250, "2.1.5", "Ok")


@pytest.fixture(scope="module")
def rbl(dns_server):
    return dns_server.add_zone([
        "1.2.0.192 A 127.0.0.2", '1.2.0.192 TXT "Listed for testing"',
        "3.2.0.192 A 127.0.0.4", '3.2.0.192 TXT "first"', '3.2.0.192 TXT "second"',
        "1." + "0." * 23 + "8.b.d.0.1.0.0.2 A 127.0.0.2",
        "4.2.0.192 A 127.0.0.2", '4.2.0.192 TXT "bad\\013\\010line"',
        "spam.test A 127.0.0.2", 'spam.test TXT "spam domain"',
    ])


def test_a_listed_client_gets_the_lists_reason(dns_server, rbl):
    cf = f"smtpd_client_restrictions = reject_rbl_client {rbl}"
    assert rcpt_reply(dns_server, cf) == blocked("192.0.2.1", "Client host", rbl,
                                                 "Listed for testing")
    assert rcpt_reply(dns_server, cf, client_addr="192.0.2.2") == OK
    assert rcpt_reply(dns_server, f"smtpd_client_restrictions = reject_rbl {rbl}") == \
        blocked("192.0.2.1", "Client host", rbl, "Listed for testing")


def test_several_txt_records_are_joined_and_unprintable_characters_replaced(dns_server, rbl):
    cf = f"smtpd_client_restrictions = reject_rbl_client {rbl}"
    reply = rcpt_reply(dns_server, cf, client_addr="192.0.2.3")
    assert reply.text.endswith(("; first / second", "; second / first"))
    assert rcpt_reply(dns_server, cf, client_addr="192.0.2.4") == \
        blocked("192.0.2.4", "Client host", rbl, "bad__line")


def test_an_ipv6_client_is_asked_in_nibble_form(dns_server, rbl):
    cf = f"smtpd_client_restrictions = reject_rbl_client {rbl}"
    assert rcpt_reply(dns_server, cf, client_addr="2001:db8::1") == \
        blocked("2001:db8::1", "Client host", rbl, "")
    assert rcpt_reply(dns_server, cf, client_addr="2001:db8::2") == OK


def test_the_address_pattern_selects_the_answers_that_list(dns_server, rbl):
    # 192.0.2.1 is 127.0.0.2 in the zone, 192.0.2.3 is 127.0.0.4.
    for pattern, listed in (("127.0.0.2", {"192.0.2.1"}), ("127.0.0.[3..5]", {"192.0.2.3"}),
                            ("127.0.0.[2;4]", {"192.0.2.1", "192.0.2.3"}),
                            ("127.0.[1..9].9", set())):
        cf = f"smtpd_client_restrictions = reject_rbl_client {rbl}={pattern}"
        for client in ("192.0.2.1", "192.0.2.3"):
            assert (rcpt_reply(dns_server, cf, client_addr=client).code == 554) == \
                (client in listed), (pattern, client)


def test_address_patterns():
    assert AddressPattern("127.0.0.[1..5]").matches("127.0.0.5")
    assert not AddressPattern("127.0.0.[1..5]").matches("127.0.0.6")
    assert AddressPattern("127.0.[0;2].[2;10..11]").matches("127.0.2.11")
    for bad in ("127.0.0", "127.0.0.256", "127.0.0.[5..1]", "127.0.0.1..2", "127.0.0.[x]",
                "127.0.0.[1..]"):
        with pytest.raises(ValueError):
            AddressPattern(bad)


def test_rhsbl_names_the_class_of_what_is_listed(dns_server, rbl):
    assert rcpt_reply(dns_server, f"smtpd_sender_restrictions = reject_rhsbl_sender {rbl}",
                      sender="joe@spam.test") == \
        blocked("joe@spam.test", "Sender address", rbl, "spam domain")
    assert rcpt_reply(dns_server, f"smtpd_helo_restrictions = reject_rhsbl_helo {rbl}",
                      helo="spam.test") == \
        blocked("spam.test", "Helo command", rbl, "spam domain")
    cf = f"smtpd_relay_restrictions = reject_rhsbl_recipient {rbl}, reject_unauth_destination"
    assert rcpt_reply(dns_server, cf, rcpt="x@spam.test") == \
        blocked("x@spam.test", "Recipient address", rbl, "spam domain")
    cf = f"smtpd_client_restrictions = reject_rhsbl_client {rbl}"
    assert rcpt_reply(dns_server, cf, client_name="spam.test") == \
        blocked("spam.test", "Client host", rbl, "spam domain")
    assert rcpt_reply(dns_server, cf) == OK   # "unknown" is never asked
    cf = f"smtpd_client_restrictions = reject_rhsbl_reverse_client {rbl}"
    assert rcpt_reply(dns_server, cf, client_name="spam.test").text.startswith(
        "Service unavailable; Unverified Client host [spam.test]")


def test_rhsbl_skips_what_it_cannot_ask(dns_server, rbl):
    cf = f"smtpd_sender_restrictions = reject_rhsbl_sender {rbl}"
    for sender in ("", "joe@[192.0.2.1]", "joe@host.123"):
        assert rcpt_reply(dns_server, cf, sender=sender) == OK, sender


def test_rbl_reply_maps_and_the_reject_code(dns_server, rbl, tmp_path):
    maps = tmp_path / "rbl_reply"
    maps.write_text(f"{rbl}=127.0.0.4 $rbl_code 5.7.9 $rbl_class $rbl_what in $rbl_domain "
                    f"(${{rbl_reason?{{$rbl_reason}}:{{none}}}}) for $sender\n"
                    f"{rbl} 451 4.7.2 later\n")
    cf = (f"smtpd_client_restrictions = reject_rbl_client {rbl}=127.0.0.4, "
          f"reject_rbl_client {rbl}\nrbl_reply_maps = texthash:{maps}\nmaps_rbl_reject_code = 550")
    reply = rcpt_reply(dns_server, cf, client_addr="192.0.2.3", sender="a@s.test")
    assert (reply.code, reply.status) == (550, "5.7.9")
    assert reply.text in (f"Client host 192.0.2.3 in {rbl} ({r}) for a@s.test"
                          for r in ("first / second", "second / first"))
    assert rcpt_reply(dns_server, cf) == Reply(451, "4.7.2", "later")   # by the zone alone
    default = f"smtpd_client_restrictions = reject_rbl_client {rbl}\nmaps_rbl_reject_code = 550"
    assert rcpt_reply(dns_server, default) == blocked("192.0.2.1", "Client host", rbl,
                                                      "Listed for testing", code=550)


def test_dnswl_permits_a_listed_client_but_not_an_unauthorised_recipient(dns_server, rbl):
    cf = f"smtpd_client_restrictions = permit_dnswl_client {rbl}, reject_rbl_client {rbl}"
    assert rcpt_reply(dns_server, cf) == OK
    cf = f"smtpd_relay_restrictions = permit_dnswl_client {rbl}, reject_unauth_destination"
    assert rcpt_reply(dns_server, cf) == OK
    assert rcpt_reply(dns_server, cf, rcpt="b@elsewhere.test") == \
        R554_RELAY_DENIED.format("b@elsewhere.test")
    cf = (f"smtpd_client_restrictions = permit_rhswl_client {rbl}, reject\n")
    assert rcpt_reply(dns_server, cf, client_name="spam.test") == OK
    assert rcpt_reply(dns_server, cf, client_name="other.test").code == 554


def test_a_list_that_fails_skips_the_check_by_default(dns_server, rbl, caplog):
    broken = dns_server.add_broken_zone()
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    cf = f"smtpd_client_restrictions = reject_rbl_client {broken}, reject_rbl_client {rbl}"
    assert rcpt_reply(dns_server, cf, client_addr="192.0.2.2") == OK
    query = f"2.2.0.192.{broken}"
    assert (f"{query}: RBL lookup error: Host or domain name not found. Name service error "
            f"for name={query} type=A: Host not found, try again") in caplog.messages
    # The next list still answers: a failing list never hides a listing.
    assert rcpt_reply(dns_server, cf).code == 554


def test_relayd_rbl_tempfail_action_defers(dns_server, rbl):
    broken = dns_server.add_broken_zone()
    cf = f"smtpd_client_restrictions = reject_rbl_client {broken}\n"
    deferred = R450_ACCESS_DEFERRED.format("192.0.2.1", "Client host", "Service unavailable")
    assert rcpt_reply(dns_server, cf + "relayd_rbl_tempfail_action = defer") == deferred
    assert rcpt_reply(dns_server, cf + "relayd_rbl_tempfail_action = defer_if_permit") == deferred
    # defer_if_permit: only when the recipient would be accepted; a refusal stands.
    assert rcpt_reply(dns_server, cf + "relayd_rbl_tempfail_action = defer_if_permit",
                      rcpt="b@elsewhere.test").code == 454


def test_a_failing_dnswl_defers_a_rejection_it_might_have_prevented(dns_server, rbl):
    broken = dns_server.add_broken_zone()
    cf = f"smtpd_client_restrictions = permit_dnswl_client {broken}, reject_rbl_client {rbl}"
    assert rcpt_reply(dns_server, cf) == R450_ACCESS_DEFERRED.format(
        "192.0.2.1", "Client host", "Service unavailable")
    assert rcpt_reply(dns_server, cf, client_addr="192.0.2.2") == OK


def test_warn_if_reject_only_logs(dns_server, rbl, caplog):
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    cf = f"smtpd_client_restrictions = warn_if_reject reject_rbl_client {rbl}"
    assert rcpt_reply(dns_server, cf) == OK
    assert any("reject_warning: RCPT from unknown[192.0.2.1]: 554 5.7.1 Service unavailable; "
               f"Client host [192.0.2.1] blocked using {rbl}; Listed for testing;" in m
               for m in caplog.messages)


def test_the_legacy_maps_rbl_domains(dns_server, rbl, caplog):
    # The seed's form: several zones, a dial-up list among them, asked in order.
    dul = dns_server.add_zone(["5.2.0.192 A 127.0.0.3", '5.2.0.192 TXT "dynamic address"'])
    caplog.set_level(logging.WARNING)
    cf = f"maps_rbl_domains = {dul}, {rbl}\nsmtpd_recipient_restrictions = reject_maps_rbl, " \
         f"permit_mynetworks, reject_unauth_destination"
    assert rcpt_reply(dns_server, cf) == blocked("192.0.2.1", "Client host", rbl,
                                                 "Listed for testing")
    assert rcpt_reply(dns_server, cf, client_addr="192.0.2.5") == \
        blocked("192.0.2.5", "Client host", dul, "dynamic address")
    assert rcpt_reply(dns_server, cf, client_addr="192.0.2.6") == OK
    assert ('support for restriction "reject_maps_rbl" will be removed from relayd; '
            'use "reject_rbl_client domain-name" instead') in caplog.messages


@pytest.mark.parametrize("arg", ["bad..zone", "zone.test=127.0.0", "zone.test=1.2.3.[9..1]"])
def test_a_bad_list_argument_stops_startup(dns_server, arg):
    with pytest.raises(ConfigError, match="smtpd_client_restrictions"):
        rcpt_reply(dns_server, f"smtpd_client_restrictions = reject_rbl_client {arg}")


def test_a_list_that_does_not_answer_is_asked_once_per_name(black_hole, caplog):
    caplog.set_level(logging.WARNING, logger="relayd.smtpd")
    harness = PluginHarness(f"relayd_dns_servers = {black_hole.spec}\nrelayd_dns_timeout = 1s\n"
                            f"relayd_dns_attempts = 1\n"
                            f"smtpd_client_restrictions = reject_rbl_client rbl.test",
                            client_addr="192.0.2.1")
    replies = parse_replies(harness.dialogue(
        b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<b@relay.example>\r\n"
        b"RCPT TO:<c@relay.example>\r\nQUIT\r\n"))
    assert replies[3:5] == [OK, OK]   # skipped, as Postfix skips it
    assert black_hole.queries == 1
    assert sum("RBL lookup error" in m for m in caplog.messages) == 1


def test_a_reply_template_that_fails(dns_server, rbl, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="relayd.smtpd")
    listed = f"smtpd_client_restrictions = reject_rbl_client {rbl}\n"
    # The table cannot answer: Postfix's reject_server_error.
    missing = listed + f"rbl_reply_maps = hash:{tmp_path}/missing\n"
    assert rcpt_reply(dns_server, missing) == R451_CONFIG_ERROR
    # A template that does not start with a reply code: a generic 450 and a warning.
    maps = tmp_path / "rbl_reply"
    maps.write_text(f"{rbl} Go away\n")
    assert rcpt_reply(dns_server, listed + f"rbl_reply_maps = texthash:{maps}\n") == \
        R450_DEFER.format("Service unavailable")
    assert "rbl response code configuration error: Go away" in caplog.messages

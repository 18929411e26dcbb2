"""reject_unknown_helo_hostname, reject_unknown_sender_domain and
reject_unknown_recipient_domain in relayd's dialogue against a real DNS
server (Knot, the session's ``dns_server``) and one that never answers
(``black_hole``): Postfix's replies and codes, null MX, failures."""
from __future__ import annotations

import logging

import pytest

from relayd.smtp.replies import (R450_HELO_MALFORMED_DNS, R450_HELO_NOT_FOUND,
                                 R450_RECIPIENT_DOMAIN_NOT_FOUND, R450_RECIPIENT_MALFORMED_DNS,
                                 R450_SENDER_DOMAIN_NOT_FOUND, R450_SENDER_MALFORMED_DNS,
                                 R550_SENDER_NULL_MX,
                                 R556_RECIPIENT_NULL_MX, R501_INVALID_HOSTADDR)
from tests.pipeline.dialogue import Dialogue, restrictions

OK = "250 2.1.5 Ok"


@pytest.fixture(scope="module")
def zone(dns_server):
    """Names with an A, only an AAAA, only an MX, a null MX, an MX to a
    malformed name, and one that exists with no address or MX."""
    return dns_server.add_zone([
        "host A 192.0.2.1", "v6only AAAA 2001:db8::1", "mxonly MX 10 host",
        "nullmx MX 0 .", "badmx MX 10 bad\\032name", "txtonly TXT \"no address here\"",
    ])


def dialogue(server, main_cf: str) -> Dialogue:
    return Dialogue(restrictions(f"relayd_dns_servers = {server.spec}\n"
                                 f"relayd_dns_timeout = 1s\nrelayd_dns_attempts = 1\n{main_cf}"))


def helo_reply(server, helo: str, extra: str = "") -> str:
    d = dialogue(server, f"smtpd_helo_restrictions = reject_unknown_helo_hostname\n{extra}")
    d.say(f"EHLO {helo}")
    return d.mail("a@sender.example", "x@example.com")[0]


def fmt(template, *args, code: int | None = None) -> str:
    reply = template.format(*args)
    return str(reply if code is None else reply.with_code(code))


@pytest.mark.parametrize("name", ["host", "v6only", "mxonly", "nullmx"])
def test_a_helo_name_with_an_address_or_mx_passes(dns_server, zone, name):
    # A null MX passes too: a host may send mail and receive none.
    assert helo_reply(dns_server, f"{name}.{zone}") == OK


@pytest.mark.parametrize("name", ["txtonly", "nosuchname"])
def test_an_unknown_helo_name_is_host_not_found(dns_server, zone, name):
    helo = f"{name}.{zone}"
    assert helo_reply(dns_server, helo) == fmt(R450_HELO_NOT_FOUND, helo)
    assert helo_reply(dns_server, helo, "unknown_hostname_reject_code = 550\n") == \
        fmt(R450_HELO_NOT_FOUND, helo, code=550)


def test_helo_names_that_are_not_host_names(dns_server, zone):
    # No question is asked for a name DNS cannot have; a bracketed one is
    # checked as an address literal (reject_invalid_hostaddr).
    assert helo_reply(dns_server, "bad_name!.test") == fmt(R450_HELO_NOT_FOUND, "bad_name!.test")
    assert helo_reply(dns_server, "[300.1.1.1]") == \
        fmt(R501_INVALID_HOSTADDR, "[300.1.1.1]", "Helo command")
    assert helo_reply(dns_server, "[192.0.2.1]") == OK


def test_a_malformed_mx_is_a_malformed_reply(dns_server, zone):
    assert sender_reply(dns_server, f"a@badmx.{zone}") == \
        fmt(R450_SENDER_MALFORMED_DNS, f"a@badmx.{zone}")
    assert recipient_reply(dns_server, f"x@badmx.{zone}") == \
        fmt(R450_RECIPIENT_MALFORMED_DNS, f"x@badmx.{zone}")
    d = dialogue(dns_server, "smtpd_helo_restrictions = reject_unknown_helo_hostname\n")
    d.say(f"EHLO badmx.{zone}")
    assert d.mail("a@sender.example", "x@example.com") == [
        fmt(R450_HELO_MALFORMED_DNS, f"badmx.{zone}")]


def sender_reply(server, sender: str, extra: str = "") -> str:
    d = dialogue(server, f"smtpd_sender_restrictions = reject_unknown_sender_domain\n{extra}")
    return d.mail(sender, "x@example.com")[0]


# Every .test domain a relay destination (not a final one): the recipient check applies.
RELAY_TEST = "relay_domains = example.com, relay.example, test\n"


def recipient_reply(server, recipient: str, extra: str = "") -> str:
    d = dialogue(server, f"{RELAY_TEST}smtpd_recipient_restrictions = "
                         f"reject_unknown_recipient_domain\n{extra}")
    return d.mail("a@sender.example", recipient)[0]


@pytest.mark.parametrize("name", ["host", "v6only", "mxonly"])
def test_a_domain_with_an_mx_or_address_passes(dns_server, zone, name):
    assert sender_reply(dns_server, f"a@{name}.{zone}") == OK
    assert recipient_reply(dns_server, f"x@{name}.{zone}") == OK


@pytest.mark.parametrize("name", ["txtonly", "nosuchname"])
def test_an_unknown_domain_is_domain_not_found(dns_server, zone, name):
    sender, recipient = f"a@{name}.{zone}", f"x@{name}.{zone}"
    assert sender_reply(dns_server, sender) == fmt(R450_SENDER_DOMAIN_NOT_FOUND, sender)
    assert recipient_reply(dns_server, recipient) == \
        fmt(R450_RECIPIENT_DOMAIN_NOT_FOUND, recipient)
    code = "unknown_address_reject_code = 550\n"
    assert sender_reply(dns_server, sender, code) == \
        "550 5.1.8 <%s>: Sender address rejected: Domain not found" % sender
    assert recipient_reply(dns_server, recipient, code) == \
        "550 5.1.2 <%s>: Recipient address rejected: Domain not found" % recipient


def test_a_null_mx_domain_does_not_accept_mail(dns_server, zone):
    # RFC 7505; Postfix's replies: 550 5.7.27 for a sender, 556 5.1.10 for a recipient.
    domain = f"nullmx.{zone}"
    assert sender_reply(dns_server, f"a@{domain}") == \
        fmt(R550_SENDER_NULL_MX, f"a@{domain}", domain)
    assert recipient_reply(dns_server, f"x@{domain}") == \
        fmt(R556_RECIPIENT_NULL_MX, f"x@{domain}", domain)
    assert str(R556_RECIPIENT_NULL_MX.format("x@d.test", "d.test")) == \
        "556 5.1.10 <x@d.test>: Recipient address rejected: Domain d.test does not accept " \
        "mail (nullMX)"


def test_final_destinations_literals_and_the_null_sender_are_not_asked(black_hole):
    # Checked without a working DNS server: none of these may ask one.
    assert sender_reply(black_hole, "") == OK
    assert sender_reply(black_hole, "a@local.example") == OK       # mydestination
    assert sender_reply(black_hole, "a@[192.0.2.1]") == OK
    assert recipient_reply(black_hole, "postmaster@local.example") == OK
    assert recipient_reply(black_hole, "x@alias.example",
                           "virtual_alias_domains = alias.example\n"
                           "virtual_alias_maps = inline:{ {x@alias.example = y@local.example} }\n"
                           ) == OK
    assert black_hole.queries == 0


@pytest.fixture(scope="module")
def broken(dns_server):
    """A zone the server cannot load: SERVFAIL for every name in it, at once."""
    return dns_server.add_broken_zone()


def test_a_failed_lookup_defers_if_permitted_and_never_rejects(dns_server, broken):
    # defer_if_permit (the default): 450 when nothing else refuses...
    sender, recipient = f"a@x.{broken}", f"x@x.{broken}"
    code = "unknown_address_reject_code = 550\nunknown_hostname_reject_code = 550\n"
    assert sender_reply(dns_server, sender, code) == fmt(R450_SENDER_DOMAIN_NOT_FOUND, sender)
    assert helo_reply(dns_server, f"x.{broken}", code) == fmt(R450_HELO_NOT_FOUND, f"x.{broken}")
    # ... and a later reject decides.
    d = dialogue(dns_server, f"{RELAY_TEST}smtpd_recipient_restrictions = "
                             "reject_unknown_recipient_domain, reject\n")
    assert d.mail("a@sender.example", recipient) == [
        f"554 5.7.1 <{recipient}>: Recipient address rejected: Access denied"]


def test_tempfail_action_defer_defers_at_once(dns_server, broken):
    recipient = f"x@x.{broken}"
    d = dialogue(dns_server, f"{RELAY_TEST}smtpd_recipient_restrictions = "
                             "reject_unknown_recipient_domain, reject\n"
                             "unknown_address_tempfail_action = defer\n")
    assert d.mail("a@sender.example", recipient) == [
        fmt(R450_RECIPIENT_DOMAIN_NOT_FOUND, recipient)]


def test_a_dns_server_that_does_not_answer_is_a_temporary_failure(black_hole):
    # Each record type waits relayd_dns_timeout (1s) for nothing: 450, not 550.
    sender = "a@somewhere.test"
    assert sender_reply(black_hole, sender, "unknown_address_reject_code = 550\n") == \
        fmt(R450_SENDER_DOMAIN_NOT_FOUND, sender)
    assert black_hole.queries == 3   # MX, A, AAAA: one try each


def test_warn_if_reject_logs_what_would_be_refused(dns_server, zone, caplog):
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    sender = f"a@nosuchname.{zone}"
    d = dialogue(dns_server, "smtpd_sender_restrictions = warn_if_reject, "
                             "reject_unknown_sender_domain\n")
    assert d.mail(sender, "x@example.com") == [OK]
    assert any(f"reject_warning: RCPT from unknown[198.51.100.7]: "
               f"{fmt(R450_SENDER_DOMAIN_NOT_FOUND, sender)}" in m for m in caplog.messages)


def test_the_old_names(dns_server, zone):
    assert sender_reply(dns_server, f"a@nosuchname.{zone}").startswith("450 4.1.8")
    d = dialogue(dns_server, "smtpd_sender_restrictions = reject_unknown_address\n")
    assert d.mail(f"a@nosuchname.{zone}", "x@example.com")[0].startswith("450 4.1.8")
    d = dialogue(dns_server, "smtpd_helo_restrictions = reject_unknown_hostname\n")
    d.say(f"EHLO nosuchname.{zone}")
    assert d.mail("a@sender.example", "x@example.com")[0].startswith("450 4.7.1")

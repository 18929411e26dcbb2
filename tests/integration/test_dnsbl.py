"""DNS block and allow lists through a real relayd process, smtplib clients on
127.0.0.1 and 127.0.0.2 (Linux routes all of 127/8 to lo), and a real DNS
server (Knot, the session's ``dns_server``), or a black hole that never answers."""
from __future__ import annotations

import smtplib

import pytest

MESSAGE = b"Subject: dnsbl test\r\n\r\nhello\r\n"


def send(port: int, *, source: str = "127.0.0.1", helo: str = "client.test",
         sender: str = "a@sender.test", rcpt: str = "b@relay.example") -> tuple[int, str]:
    """One transaction; the first reply that is not a success, or DATA's reply."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=30) as client:
        client.ehlo(helo)
        for step in (lambda: client.mail(sender), lambda: client.rcpt(rcpt),
                     lambda: client.data(MESSAGE)):
            code, text = step()
            if code != 250:
                return code, text.decode()
        return code, text.decode()


@pytest.fixture(scope="module")
def lists(dns_server):
    """A block list and an allow list that both list 127.0.0.2, a domain list."""
    block = dns_server.add_zone(["2.0.0.127 A 127.0.0.2",
                                 '2.0.0.127 TXT "Blocked, see https://rbl.test/q?127.0.0.2"'])
    allow = dns_server.add_zone(["2.0.0.127 A 127.0.0.2"])
    domains = dns_server.add_zone(["listed.test A 127.0.0.2",
                                   'listed.test TXT "listed domain"'])
    return block, allow, domains


def test_a_listed_client_gets_the_lists_text_and_the_others_deliver(relayd_factory, sink,
                                                                     dns_server, lists):
    block, _, _ = lists
    relayd = relayd_factory(f"relayd_dns_servers = {dns_server.spec}\n"
                            f"smtpd_client_restrictions = reject_rbl_client {block}\n")
    reason = "Blocked, see https://rbl.test/q?127.0.0.2"
    refusal = (f"5.7.1 Service unavailable; Client host [127.0.0.2] blocked using {block}; "
               f"{reason}")
    assert send(relayd.port, source="127.0.0.2") == (554, refusal)
    relayd.wait_log(f"NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 {refusal}; "
                    f"from=<a@sender.test> to=<b@relay.example> proto=ESMTP helo=<client.test>")
    assert send(relayd.port)[0] == 250
    (delivered,) = sink.wait_for(1)
    assert delivered.recipients == ["b@relay.example"]


def test_an_allowlisted_client_passes_the_block_list(relayd_factory, sink, dns_server, lists):
    block, allow, _ = lists
    relayd = relayd_factory(f"relayd_dns_servers = {dns_server.spec}\n"
                            f"smtpd_client_restrictions = permit_dnswl_client {allow}, "
                            f"reject_rbl_client {block}\n")
    assert send(relayd.port, source="127.0.0.2")[0] == 250
    assert len(sink.wait_for(1)) == 1


def test_rhsbl_on_helo_sender_and_recipient(relayd_factory, dns_server, lists):
    _, _, domains = lists
    relayd = relayd_factory(
        f"relayd_dns_servers = {dns_server.spec}\n"
        f"smtpd_helo_restrictions = reject_rhsbl_helo {domains}\n"
        f"smtpd_sender_restrictions = reject_rhsbl_sender {domains}\n"
        f"smtpd_recipient_restrictions = reject_rhsbl_recipient {domains}, permit_mynetworks, "
        f"reject_unauth_destination\n")
    for what, cls, kwargs in (("listed.test", "Helo command", {"helo": "listed.test"}),
                              ("joe@listed.test", "Sender address", {"sender": "joe@listed.test"}),
                              ("x@listed.test", "Recipient address", {"rcpt": "x@listed.test"})):
        assert send(relayd.port, **kwargs) == (
            554, f"5.7.1 Service unavailable; {cls} [{what}] blocked using {domains}; "
                 f"listed domain")
    relayd.wait_log(f"blocked using {domains}; listed domain; from=<a@sender.test> "
                    f"to=<x@listed.test>")


def test_a_dns_server_that_never_answers(relayd_factory, sink, black_hole, lists):
    block, _, _ = lists
    common = (f"relayd_dns_servers = {black_hole.spec}\nrelayd_dns_timeout = 1s\n"
              f"relayd_dns_attempts = 1\nsmtpd_client_restrictions = reject_rbl_client {block}\n")
    # Postfix's behaviour, the default: the check is skipped with a warning, the mail flows.
    relayd = relayd_factory(common)
    assert send(relayd.port, source="127.0.0.2")[0] == 250
    assert len(sink.wait_for(1)) == 1
    query = f"2.0.0.127.{block}"
    relayd.wait_log(f"warning: {query}: RBL lookup error: Host or domain name not found. "
                    f"Name service error for name={query} type=A: Host not found, try again")
    # Configured to defer: 450, and the client keeps its message.
    deferring = relayd_factory(common + "relayd_rbl_tempfail_action = defer\n", name="defer")
    assert send(deferring.port, source="127.0.0.2") == (
        450, "4.7.1 <127.0.0.2>: Client host rejected: Service unavailable")
    assert black_hole.queries >= 2

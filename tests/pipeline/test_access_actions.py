"""access(5) actions in scripted SMTP dialogues: the replies a client sees,
the log lines an admin greps for, the actions the queue receives."""
import logging

import pytest

from relayd.pipeline.verdicts import Bcc, Discard, Filter, Hold, Prepend, Redirect
from tests.pipeline.dialogue import Dialogue, restrictions


def inline(entries: dict) -> str:
    """An inline: table in main.cf syntax, each entry braced so values keep blanks."""
    return "inline:{ %s }" % ", ".join(f"{{{k} = {v}}}" for k, v in entries.items())


def recipient_rules(entries: dict, extra: str = "") -> Dialogue:
    return Dialogue(restrictions(
        f"smtpd_recipient_restrictions = check_recipient_access {inline(entries)}, "
        f"reject_unauth_destination\n{extra}"))


def test_seed_config_recipient_check_inside_the_sender_list(tmp_path):
    """The seed main.cf: a recipient check written in smtpd_sender_restrictions
    runs at RCPT (smtpd_delay_reject=yes) and names the recipient."""
    access = tmp_path / "access-inbound"
    access.write_text("# inbound\nuser@example.com OK\nexample.com REJECT\n")
    d = Dialogue(restrictions(
        f"smtpd_sender_restrictions = check_recipient_access texthash:{access}\n"))
    assert d.mail("someone@outside.example", "user@example.com", "x@example.com") == [
        "250 2.1.5 Ok",
        "554 5.7.1 <x@example.com>: Recipient address rejected: Access denied"]
    assert d.mail("", "x@example.com") == [
        "554 5.7.1 <x@example.com>: Recipient address rejected: Access denied"]


@pytest.mark.parametrize("value, reply", [
    ("REJECT", "554 5.7.1 <x@example.com>: Recipient address rejected: Access denied"),
    ("REJECT Go away", "554 5.7.1 <x@example.com>: Recipient address rejected: Go away"),
    ("REJECT 5.1.1 No such user",
     "554 5.1.1 <x@example.com>: Recipient address rejected: No such user"),
    ("REJECT 5.1.8 Bad sender domain",  # a sender DSN is swapped to fit the recipient
     "554 5.1.2 <x@example.com>: Recipient address rejected: Bad sender domain"),
    ("DEFER", "450 4.7.1 <x@example.com>: Recipient address rejected: Access denied"),
    ("DEFER Try later", "450 4.7.1 <x@example.com>: Recipient address rejected: Try later"),
    ("550 Mailbox gone", "550 5.7.1 <x@example.com>: Recipient address rejected: Mailbox gone"),
    ("421 4.3.2 Closing", "421 4.3.2 <x@example.com>: Recipient address rejected: Closing"),
    ("452 5.2.2 Full",  # the DSN class follows the reply code
     "452 4.2.2 <x@example.com>: Recipient address rejected: Full"),
    ("DEFER_IF_PERMIT",
     "450 4.7.1 <x@example.com>: Recipient address rejected: Service unavailable"),
])
def test_refusing_actions_reply_as_postfix(value, reply):
    d = recipient_rules({"x@example.com": value})
    assert d.mail("a@sender.example", "x@example.com") == [reply]


@pytest.mark.parametrize("value", ["OK", "RELAY", "12345", "ok", "DUNNO"])
def test_accepting_values_and_dunno(value):
    d = recipient_rules({"x@example.com": value, "example.com": "REJECT"})
    expected = "554 5.7.1 <x@example.com>: Recipient address rejected: Access denied" \
        if value == "DUNNO" else "250 2.1.5 Ok"
    # DUNNO stops the search: example.com is not looked up for x@example.com.
    assert d.mail("a@sender.example", "x@example.com") == [
        "250 2.1.5 Ok" if value == "DUNNO" else expected]


def test_access_codes_follow_main_cf():
    d = recipient_rules({"a@example.com": "REJECT", "b@example.com": "DEFER"},
                        "access_map_reject_code = 550\naccess_map_defer_code = 451\n")
    assert d.mail("s@sender.example", "a@example.com", "b@example.com") == [
        "550 5.7.1 <a@example.com>: Recipient address rejected: Access denied",
        "451 4.7.1 <b@example.com>: Recipient address rejected: Access denied"]


def test_soft_bounce_turns_rejects_into_deferrals():
    d = recipient_rules({"a@example.com": "REJECT"}, "soft_bounce = yes\n")
    assert d.mail("s@sender.example", "a@example.com") == [
        "454 4.7.1 <a@example.com>: Recipient address rejected: Access denied"]


def test_defer_if_reject_turns_a_later_reject_into_450():
    d = Dialogue(restrictions(
        "smtpd_recipient_restrictions = check_client_access inline:{198.51.100=DEFER_IF_REJECT}, "
        "check_recipient_access inline:{a@example.com=REJECT}, reject_unauth_destination\n"))
    assert d.mail("s@sender.example", "a@example.com", "b@example.com") == [
        "450 4.7.1 <unknown[198.51.100.7]>: Client host rejected: Service unavailable",
        "250 2.1.5 Ok"]


def test_message_actions_reach_the_queue_and_the_log(caplog):
    d = recipient_rules({
        "h@example.com": "HOLD", "f@example.com": "FILTER smtp:[scanner]:10025",
        "r@example.com": "REDIRECT spam@quarantine.example",
        "b@example.com": "BCC audit@archive.example",
        "p@example.com": "PREPEND X-Relay-Note: checked",
        "g@example.com": "FILTER smtp:[second]:10026"})
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    d.mail("s@sender.example", "h@example.com", "f@example.com", "r@example.com",
           "b@example.com", "p@example.com", "g@example.com", "p@example.com")
    assert d.message().startswith("250 2.0.0 Ok: queued as")
    assert d.queued[0] == [
        Hold("<h@example.com>: Recipient address triggers HOLD action"),
        Redirect("spam@quarantine.example",
                 "<r@example.com>: Recipient address triggers REDIRECT spam@quarantine.example"),
        Bcc("audit@archive.example",
            "<b@example.com>: Recipient address triggers BCC audit@archive.example"),
        Prepend("X-Relay-Note: checked"),
        Filter("smtp:[second]:10026",
               "<g@example.com>: Recipient address triggers FILTER smtp:[second]:10026")]
    assert ("NOQUEUE: hold: RCPT from unknown[198.51.100.7]: <h@example.com>: Recipient address "
            "triggers HOLD action; from=<s@sender.example> to=<h@example.com> proto=ESMTP "
            "helo=<client.example>") in caplog.messages
    # A new transaction starts clean.
    d.mail("s@sender.example", "plain@example.com")
    d.message()
    assert d.queued[1] == []


def test_discard_accepts_everything_after_it_and_skips_all_later_checks():
    d = recipient_rules({"d@example.com": "DISCARD spam trap", "x@example.com": "REJECT"})
    assert d.mail("s@sender.example", "d@example.com", "x@example.com", "y@foreign.example") == [
        "250 2.1.5 Ok"] * 3
    d.message()
    assert d.queued[0] == [Discard("<d@example.com>: Recipient address spam trap")]


def test_warn_and_info_log_and_go_on(caplog):
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    d = recipient_rules({"w@example.com": "WARN suspicious recipient", "i@example.com": "INFO"})
    assert d.mail("", "w@example.com", "i@example.com") == ["250 2.1.5 Ok"] * 2
    assert ("NOQUEUE: warn: RCPT from unknown[198.51.100.7]: suspicious recipient; from=<> "
            "to=<w@example.com> proto=ESMTP helo=<client.example>") in caplog.messages
    # The first accepted RCPT gave the transaction its queue id: later lines carry it.
    assert any(m.startswith("QID1: info: RCPT from unknown[198.51.100.7]: ;")
               for m in caplog.messages)


def test_rejections_are_logged_as_postfix_logs_them(caplog):
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    d = recipient_rules({"x@example.com": "REJECT"})
    d.mail("s@sender.example", "x@example.com")
    assert caplog.messages[-1] == (
        "NOQUEUE: reject: RCPT from unknown[198.51.100.7]: 554 5.7.1 <x@example.com>: Recipient "
        "address rejected: Access denied; from=<s@sender.example> to=<x@example.com> "
        "proto=ESMTP helo=<client.example>")


def test_restriction_class_as_access_result():
    rules = restrictions(
        "smtpd_restriction_classes = insiders_only\n"
        "insiders_only = permit_mynetworks, reject\n"
        "smtpd_recipient_restrictions = check_recipient_access "
        "inline:{staff@example.com=insiders_only}, reject_unauth_destination\n")
    assert Dialogue(rules).mail("s@sender.example", "staff@example.com", "other@example.com") == [
        "554 5.7.1 <staff@example.com>: Recipient address rejected: Access denied",
        "250 2.1.5 Ok"]
    assert Dialogue(rules, addr="192.0.2.9").mail("s@sender.example", "staff@example.com") == [
        "250 2.1.5 Ok"]


def test_a_table_in_an_access_result_is_a_server_error():
    d = recipient_rules({"x@example.com": "check_sender_access texthash:/etc/postfix/x"})
    assert d.mail("s@sender.example", "x@example.com") == ["451 4.3.5 Server configuration error"]


def test_an_unknown_name_in_an_access_result_is_a_server_error():
    d = recipient_rules({"x@example.com": "no_such_restriction"})
    assert d.mail("s@sender.example", "x@example.com") == ["451 4.3.5 Server configuration error"]


def test_malformed_actions_are_ignored_with_a_warning(caplog):
    d = recipient_rules({"f@example.com": "FILTER nocolon", "r@example.com": "REDIRECT nobody",
                         "p@example.com": "PREPEND not a header"})
    assert d.mail("s@sender.example", "f@example.com", "r@example.com", "p@example.com") == [
        "250 2.1.5 Ok"] * 3
    d.message()
    assert d.queued[0] == []
    assert sum("requires" in m for m in caplog.messages) == 3

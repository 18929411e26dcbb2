"""Evaluation of the restriction lists over a whole SMTP session: delayed and
immediate rejection, deferred decisions, warn_if_reject, classes, the
syntax checks and names relayd reserves for later issues."""
import importlib
import logging

import pytest

from relayd.config import ConfigError
from relayd.pipeline.registry import BUILTIN_PLUGINS, CheckRegistry
from relayd.pipeline.restrictions import Restrictions
from relayd.pipeline.verdicts import Reject
from relayd.smtp.replies import Reply
from relayd.config import load_config
from tests.pipeline.dialogue import BASE, Dialogue, restrictions


def test_delay_reject_no_rejects_at_each_stage_and_denies_after_connect():
    rules = restrictions("smtpd_delay_reject = no\n"
                         "smtpd_client_restrictions = check_client_access inline:{198.51.100=REJECT}\n"
                         "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname\n"
                         "smtpd_sender_restrictions = reject_non_fqdn_sender\n")
    d = Dialogue(rules)
    assert d.greeting == "554 5.7.1 <unknown[198.51.100.7]>: Client host rejected: Access denied"
    assert d.say("EHLO client.example") == "503 5.7.0 Error: access denied for unknown[198.51.100.7]"
    assert d.say("QUIT") == "221 2.0.0 Bye"
    d = Dialogue(rules, addr="203.0.113.5")
    assert d.greeting.startswith("220")
    assert d.say("HELO localhost") == \
        "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"
    assert d.say("HELO mail.client.example") == "250 relay.test"
    assert d.say("MAIL FROM:<user>") == \
        "504 5.5.2 <user>: Sender address rejected: need fully-qualified address"
    assert d.say("MAIL FROM:<user@client.example>") == "250 2.1.0 Ok"


def test_delay_reject_yes_answers_every_stage_at_rcpt():
    rules = restrictions("smtpd_client_restrictions = check_client_access inline:{198.51.100=REJECT}\n"
                         "smtpd_helo_restrictions = reject_invalid_helo_hostname\n")
    d = Dialogue(rules)
    assert d.greeting.startswith("220")
    assert d.say("EHLO bad_name!").startswith("250")
    assert d.say("MAIL FROM:<a@sender.example>") == "250 2.1.0 Ok"
    assert d.say("RCPT TO:<x@example.com>") == \
        "554 5.7.1 <unknown[198.51.100.7]>: Client host rejected: Access denied"
    d = Dialogue(rules, addr="203.0.113.5")
    d.say("EHLO bad_name!")
    assert d.mail("a@sender.example", "x@example.com") == [
        "501 5.5.2 <bad_name!>: Helo command rejected: Invalid name"]


def test_permit_ends_only_its_own_list():
    d = Dialogue(restrictions("smtpd_sender_restrictions = permit\n"
                              "smtpd_recipient_restrictions = reject_non_fqdn_recipient, "
                              "reject_unauth_destination\n"))
    assert d.mail("a@sender.example", "x@example.com", "x@foreign.example", "bare") == [
        "250 2.1.5 Ok", "454 4.7.1 <x@foreign.example>: Relay access denied",
        "504 5.5.2 <bare>: Recipient address rejected: need fully-qualified address"]


def test_defer_if_permit_defers_what_would_be_accepted_only():
    d = Dialogue(restrictions(
        "smtpd_client_restrictions = check_client_access inline:{198.51.100=DEFER_IF_PERMIT}\n"))
    assert d.mail("a@sender.example", "x@example.com", "x@foreign.example") == [
        "450 4.7.1 <unknown[198.51.100.7]>: Client host rejected: Service unavailable",
        "454 4.7.1 <x@foreign.example>: Relay access denied"]


def test_defer_if_permit_generic_restriction():
    d = Dialogue(restrictions("smtpd_recipient_restrictions = defer_if_permit, "
                              "reject_unauth_destination\n"))
    assert d.mail("a@sender.example", "x@example.com") == [
        "450 4.7.0 <x@example.com>: Recipient address rejected: defer_if_permit requested"]


def test_warn_if_reject_logs_instead_of_rejecting(caplog):
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    d = Dialogue(restrictions("smtpd_recipient_restrictions = warn_if_reject, "
                              "reject_non_fqdn_recipient, reject_unauth_destination\n"))
    assert d.mail("a@sender.example", "bare", "x@foreign.example")[1] == \
        "454 4.7.1 <x@foreign.example>: Relay access denied"
    assert ("NOQUEUE: reject_warning: RCPT from unknown[198.51.100.7]: 504 5.5.2 <bare>: "
            "Recipient address rejected: need fully-qualified address; from=<a@sender.example> "
            "to=<bare> proto=ESMTP helo=<client.example>") in caplog.messages


def test_restriction_class_named_in_a_list_and_bare_tables():
    rules = restrictions("smtpd_restriction_classes = strict\n"
                         "strict = reject_non_fqdn_sender, check_sender_access inline:{spam.example=REJECT}\n"
                         "smtpd_sender_restrictions = inline:{good@spam.example=OK}, strict\n")
    d = Dialogue(rules)
    assert d.mail("good@spam.example", "x@example.com") == ["250 2.1.5 Ok"]
    assert d.mail("bad@spam.example", "x@example.com") == [
        "554 5.7.1 <bad@spam.example>: Sender address rejected: Access denied"]
    assert d.mail("nodomain", "x@example.com") == [
        "504 5.5.2 <nodomain>: Sender address rejected: need fully-qualified address"]


def test_null_sender_is_looked_up_as_the_null_access_key():
    d = Dialogue(restrictions("smtpd_sender_restrictions = check_sender_access inline:{<>=REJECT}\n"))
    assert d.mail("", "x@example.com") == [
        "554 5.7.1 <>: Sender address rejected: Access denied"]
    assert d.mail("a@sender.example", "x@example.com") == ["250 2.1.5 Ok"]


def test_helo_and_client_access_search_parent_domains_and_networks():
    d = Dialogue(restrictions(
        "smtpd_helo_restrictions = check_helo_access inline:{example.net=REJECT}\n"
        "smtpd_client_restrictions = check_client_access inline:{2001:db8=REJECT}\n"),
        addr="2001:db8::25")
    d.say("EHLO mx.example.org")
    assert d.mail("a@sender.example", "x@example.com") == [
        "554 5.7.1 <unknown[2001:db8::25]>: Client host rejected: Access denied"]
    d = Dialogue(restrictions("smtpd_helo_restrictions = check_helo_access "
                              "inline:{example.net=REJECT}\n"))
    d.say("EHLO mx.sub.example.net")
    assert d.mail("a@sender.example", "x@example.com") == [
        "554 5.7.1 <mx.sub.example.net>: Helo command rejected: Access denied"]


def test_data_and_end_of_data_restrictions():
    d = Dialogue(restrictions("smtpd_data_restrictions = reject_unauth_pipelining\n"
                              "smtpd_end_of_data_restrictions = check_sender_access "
                              "inline:{late@sender.example=REJECT}\n"))
    d.mail("late@sender.example", "x@example.com")
    assert d.message() == "554 5.7.1 <late@sender.example>: Sender address rejected: Access denied"
    d.policy.update(pipelined_early=True)
    d.mail("a@sender.example", "x@example.com")
    assert d.say("DATA") == \
        "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining"


def test_implicit_reject_unlisted_recipient_calls_the_registered_check():
    seen = []
    registry = CheckRegistry()  # the built-ins, without the recipients plugin
    for target in BUILTIN_PLUGINS:
        if target.startswith("relayd.checks.recipients:"):
            continue
        module, _, attr = target.partition(":")
        registry.load_plugin(target, getattr(importlib.import_module(module), attr))

    def unlisted(ctx):
        seen.append(ctx.recipient)
        return Reject(Reply(550, "5.1.1", f"<{ctx.recipient}>: Recipient address rejected: "
                                          "User unknown in relay recipient table"))
    registry.load_plugin("test", lambda r: r.add("reject_unlisted_recipient", unlisted))
    config = load_config(main_cf=BASE)
    d = Dialogue(Restrictions(config, registry))
    assert d.mail("a@sender.example", "x@example.com", "postmaster")[0].startswith("550 5.1.1")
    assert seen == ["x@example.com"]  # "postmaster" is always accepted
    off = Restrictions(load_config(main_cf=BASE + "smtpd_reject_unlisted_recipient = no\n"),
                       registry)
    assert Dialogue(off).mail("a@sender.example", "x@example.com") == ["250 2.1.5 Ok"]
    assert seen == ["x@example.com"]


@pytest.mark.parametrize("restriction, issue", [
    ("check_client_mx_access hash:/etc/relayd/mx", "DNS issue"),
    ("reject_unknown_sender_domain", "DNS issue"),
    ("check_policy_service inet:127.0.0.1:10023", "policy service issue"),
    ("check_sasl_access", "SASL issue"),
])
def test_reserved_restrictions_stop_startup_with_a_clear_error(restriction, issue):
    with pytest.raises(ConfigError) as err:
        restrictions(f"smtpd_recipient_restrictions = {restriction}, reject_unauth_destination\n")
    assert issue in str(err.value) and "smtpd_recipient_restrictions" in str(err.value)


def test_a_table_that_cannot_be_opened_stops_startup(tmp_path):
    with pytest.raises(ConfigError, match="smtpd_sender_restrictions"):
        restrictions(f"smtpd_sender_restrictions = check_sender_access "
                     f"texthash:{tmp_path}/missing\n")


def test_undefined_restriction_class_stops_startup():
    with pytest.raises(ConfigError, match="smtpd_restriction_classes"):
        restrictions("smtpd_restriction_classes = nowhere\n")


def test_a_table_that_cannot_answer_gives_451_4_3_5_naming_the_address():
    class Down:
        spec, fixed = "down:x", True

        def lookup(self, key):
            from relayd.tables.base import TemporaryLookupError
            raise TemporaryLookupError("database down")
    from relayd.checks.access import AccessTables
    from relayd.tables.maps import Maps
    rules = restrictions("smtpd_sender_restrictions = check_sender_access static:OK\n")
    # A mock: no built-in table type can be made to fail on demand here.
    AccessTables.of(rules.config).tables["static:OK"] = Maps("static:OK", [Down()])
    assert Dialogue(rules).mail("a@sender.example", "x@example.com") == [
        "451 4.3.5 <a@sender.example>: Sender address rejected: Server configuration error"]

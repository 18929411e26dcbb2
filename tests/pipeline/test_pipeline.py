"""The restriction pipeline: plugin registration, evaluation rules, failure modes."""
import dataclasses

import pytest

from relayd.config import ConfigError, load_config
from relayd.pipeline.context import CheckContext, SessionView
from relayd.pipeline.dispatcher import TemporaryLookupError, compile_restrictions, evaluate
from relayd.pipeline.registry import CheckRegistry
from relayd.pipeline.restrictions import Restrictions
from relayd.pipeline.verdicts import DUNNO, OK, Defer, Reject, refusal
from relayd.smtp import replies as R

CONFIG = load_config(main_cf="mydestination = local.example\nrelay_domains = relay.example\n"
                             "mynetworks = 192.0.2.0/24\nlocal_recipient_maps =\n")
OUTSIDE = SessionView("198.51.100.7", "unknown", 40000, "client.example", "ESMTP")
INSIDE = SessionView("192.0.2.10", "unknown", 40000, "client.example", "ESMTP")


def registry_with(**checks):
    registry = CheckRegistry.from_entry_points()
    registry.load_plugin("tests", lambda r: [r.add(name, func) for name, func in checks.items()])
    return registry


def context(session=OUTSIDE, recipient="user@foreign.example"):
    return CheckContext("recipient", session, CONFIG, "a@example.org", recipient)


def test_builtins_are_registered_through_the_plugin_entry_points():
    from importlib.metadata import entry_points
    names = {ep.value for ep in entry_points(group="relayd.plugins")}
    assert "relayd.checks.relay:register" in names
    registry = CheckRegistry.from_entry_points()
    for name in ("permit_mynetworks", "reject_unauth_destination", "defer_unauth_destination",
                 "permit", "reject", "defer", "permit_sasl_authenticated"):
        assert registry.get(name) is not None, name


def test_first_decisive_verdict_wins_and_end_of_list_is_dunno():
    calls = []
    registry = registry_with(note=lambda ctx: calls.append(ctx.stage) or DUNNO)
    elements = compile_restrictions("smtpd_recipient_restrictions",
                                    ["note", "permit_mynetworks", "note", "reject"], registry)
    assert evaluate(elements, context(INSIDE)) == OK
    assert calls == ["recipient"]
    assert evaluate(compile_restrictions("x", ["note"], registry), context()) == DUNNO


def test_reject_unauth_destination_reply_is_postfix_s():
    elements = compile_restrictions("smtpd_relay_restrictions", ["permit_mynetworks",
                                    "reject_unauth_destination"], CheckRegistry.from_entry_points())
    assert evaluate(elements, context()) == Reject(R.R554_RELAY_DENIED.format("user@foreign.example"))
    assert evaluate(elements, context(recipient="user@relay.example")) == DUNNO


def test_generic_reject_names_the_stage():
    elements = compile_restrictions("smtpd_recipient_restrictions", ["reject"],
                                    CheckRegistry.from_entry_points())
    verdict = evaluate(elements, context(recipient="x@relay.example"))
    assert verdict.reply.to_bytes() == \
        b"554 5.7.1 <x@relay.example>: Recipient address rejected: Access denied\r\n"


def test_a_check_that_raises_gives_451_4_3_0_never_an_accept():
    def broken(ctx):
        raise RuntimeError("plugin bug")
    elements = compile_restrictions("x", ["broken", "permit"], registry_with(broken=broken))
    assert evaluate(elements, context()) == Defer(R.R451_TEMPORARY_FAILURE)


def test_a_lookup_that_cannot_answer_gives_451_4_3_0_naming_the_object():
    """smtpd_check.c reject_dict_retry: DICT_ERR_RETRY names the list's object."""
    def down(ctx):
        raise TemporaryLookupError("mysql: connection refused")
    elements = compile_restrictions("x", ["down", "permit"], registry_with(down=down))
    assert evaluate(elements, context()) == Defer(
        R.R451_TEMPORARY_LOOKUP_FAILURE.format("user@foreign.example"))
    assert str(evaluate(elements, context()).reply) == (
        "451 4.3.0 <user@foreign.example>: Temporary lookup failure")


def test_a_lookup_that_answers_nonsense_gives_451_4_3_5():
    """smtpd_check.c reject_server_error: DICT_ERR_CONFIG."""
    from relayd.tables.base import LookupConfigError

    def bad(ctx):
        raise LookupConfigError("virtual_alias_maps: empty result")
    elements = compile_restrictions("x", ["bad", "permit"], registry_with(bad=bad))
    assert evaluate(elements, context()) == Defer(R.R451_CONFIG_ERROR)


def test_a_check_that_returns_garbage_gives_a_temporary_failure():
    elements = compile_restrictions("x", ["odd"], registry_with(odd=lambda ctx: "OK"))
    assert evaluate(elements, context()) == Defer(R.R451_TEMPORARY_FAILURE)


def test_unknown_restriction_stops_startup_naming_the_parameter():
    with pytest.raises(ConfigError) as err:
        compile_restrictions("smtpd_relay_restrictions", ["permit_mynetworks", "no_such_check"],
                             CheckRegistry.from_entry_points())
    assert "smtpd_relay_restrictions" in str(err.value) and "no_such_check" in str(err.value)


def test_default_relay_restrictions_defer_outsiders_and_permit_mynetworks():
    restrictions = Restrictions(CONFIG)
    assert restrictions.check_recipient(INSIDE, "a@example.org", "x@foreign.example") is None
    assert restrictions.check_recipient(OUTSIDE, "a@example.org", "x@foreign.example") == \
        R.R454_RELAY_DEFERRED.format("x@foreign.example")
    assert restrictions.check_recipient(OUTSIDE, "a@example.org", "x@relay.example") is None
    assert restrictions.check_recipient(OUTSIDE, "a@example.org", "x@local.example") is None


def test_an_open_relay_configuration_is_refused():
    config = load_config(main_cf="smtpd_relay_restrictions = permit_mynetworks, permit\n")
    with pytest.raises(ConfigError, match="reject_unauth_destination"):
        Restrictions(config)


def test_relay_domains_and_mydestination_may_be_tables(tmp_path):
    relay = tmp_path / "relay_domains"
    relay.write_text("relay.example OK\n")
    local = tmp_path / "local_domains"
    local.write_text("local.example OK\n")
    config = load_config(main_cf=f"mynetworks = 192.0.2.0/24\nalias_maps =\nlocal_recipient_maps =\n"
                                 f"relay_domains = texthash:{relay}\n"
                                 f"mydestination = localhost, texthash:{local}\n")
    restrictions = Restrictions(config)
    for rcpt in ("x@relay.example", "x@sub.relay.example", "x@local.example", "x@localhost"):
        assert restrictions.check_recipient(OUTSIDE, "a@example.org", rcpt) is None, rcpt
    for rcpt in ("x@sub.local.example", "x@foreign.example", "x@notrelay.example"):
        assert restrictions.check_recipient(OUTSIDE, "a@example.org", rcpt) == \
            R.R454_RELAY_DEFERRED.format(rcpt), rcpt


def test_a_missing_relay_domains_table_defers_instead_of_deciding(tmp_path):
    """A table that cannot be opened is Postfix's dict_surrogate: DICT_ERR_RETRY."""
    config = load_config(main_cf=f"mynetworks = 192.0.2.0/24\n"
                                 f"relay_domains = hash:{tmp_path / 'missing'}\n")
    assert Restrictions(config).check_recipient(OUTSIDE, "a@example.org", "x@foreign.example") == \
        R.R451_TEMPORARY_LOOKUP_FAILURE.format("x@foreign.example")


def test_refusal_rejects_5xx_and_defers_4xx():
    """The one place a reply code chooses between Reject and Defer."""
    assert refusal(R.R554_ACCESS_DENIED) == Reject(R.R554_ACCESS_DENIED)
    assert refusal(R.R450_ACCESS_DENIED) == Defer(R.R450_ACCESS_DENIED)


def test_a_session_view_copy_changes_the_named_fields_only():
    view = SessionView("192.0.2.1", "client.example", 40000, reverse_client_name="ptr.example")
    changed = view.replace(helo_name="helo.example", protocol="ESMTP", tls_active=True)
    assert changed == dataclasses.replace(view, helo_name="helo.example", protocol="ESMTP",
                                          tls_active=True)
    assert (view.helo_name, view.protocol, changed.reverse_client_name) == ("", "SMTP",
                                                                            "ptr.example")
    with pytest.raises(TypeError, match="no field helo"):
        view.replace(helo="x")

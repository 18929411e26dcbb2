"""The restriction lists of main.cf, compiled once per configuration.

With ``smtpd_delay_reject = yes`` (Postfix's default) the client, HELO and
sender lists are evaluated at RCPT time, before the relay and recipient
lists, so that a rejection can name the recipient and the client gets its
answer in one place. A permit ends only the list it came from.
"""
from __future__ import annotations

from relayd.config import ConfigError
from relayd.pipeline.context import CheckContext, SessionView
from relayd.pipeline.dispatcher import compile_restrictions, evaluate, split_list
from relayd.pipeline.registry import CheckRegistry
from relayd.pipeline.verdicts import Defer, Reject
from relayd.smtp.replies import Reply

# The stages, in the order Postfix evaluates them at RCPT time.
STAGE_PARAMETERS = (
    ("client", "smtpd_client_restrictions"),
    ("helo", "smtpd_helo_restrictions"),
    ("sender", "smtpd_sender_restrictions"),
    ("relay", "smtpd_relay_restrictions"),
    ("recipient", "smtpd_recipient_restrictions"),
)

# Postfix refuses to start unless one of these guards relaying (smtpd_check.c).
_RELAY_GUARDS = {"reject_unauth_destination", "defer_unauth_destination", "reject", "defer",
                 "defer_if_permit", "check_relay_domains"}


class Restrictions:
    """The compiled restriction lists of one configuration."""

    def __init__(self, config, registry: CheckRegistry | None = None):
        self.config = config
        registry = registry or CheckRegistry.from_entry_points()
        self.lists = {}
        for stage, parameter in STAGE_PARAMETERS:
            self.lists[stage] = compile_restrictions(parameter, _text(config[parameter]), registry)
        guarded = {e.spec.name for e in self.lists["relay"] + self.lists["recipient"]}
        if not guarded & _RELAY_GUARDS:
            raise ConfigError(
                "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify "
                "at least one working instance of: reject_unauth_destination, "
                "defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains",
                parameter="smtpd_relay_restrictions")
        self.delay_reject = config["smtpd_delay_reject"]
        # Warm the per-configuration caches the built-in checks use, so that a bad
        # domain or network list stops startup instead of failing the first RCPT.
        from relayd.checks.relay import Destinations
        Destinations.of(config)

    def check_stage(self, stage: str, session: SessionView, sender: str | None = None,
                    recipient: str | None = None, notes: dict | None = None) -> Reply | None:
        """Evaluate one list; the reply to send when it rejects or defers, else None."""
        elements = self.lists.get(stage)
        if not elements:
            return None
        ctx = CheckContext(stage, session, self.config, sender, recipient, (),
                           notes if notes is not None else {})
        verdict = evaluate(elements, ctx)
        if isinstance(verdict, (Reject, Defer)):
            return verdict.reply
        return None

    def check_recipient(self, session: SessionView, sender: str, recipient: str,
                        notes: dict | None = None) -> Reply | None:
        """Everything that decides a RCPT: the delayed lists, then relay and recipient."""
        stages = ("client", "helo", "sender", "relay", "recipient") if self.delay_reject \
            else ("relay", "recipient")
        for stage in stages:
            reply = self.check_stage(stage, session, sender, recipient, notes)
            if reply is not None:
                return reply
        return None


def _text(value) -> str:
    return value if isinstance(value, str) else " ".join(value)


__all__ = ["Restrictions", "STAGE_PARAMETERS", "split_list"]

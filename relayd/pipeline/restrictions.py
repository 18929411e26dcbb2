"""The restriction lists of main.cf, compiled once per configuration.

``Restrictions(config, registry)`` compiles smtpd_client/helo/sender/relay/
recipient/data/end_of_data_restrictions and the smtpd_restriction_classes
(each class is a parameter holding a list), opens the tables they name and
refuses a configuration Postfix would refuse: an unknown or reserved name,
or relay and recipient lists with no relay guard. :meth:`Restrictions.session`
gives the per-session object the driver talks to
(:class:`relayd.pipeline.policy.SessionPolicy`).

With ``smtpd_delay_reject = yes`` (Postfix's default) the client, HELO and
sender lists are evaluated at RCPT time, before the relay and recipient
lists, so that a rejection can name the recipient and the client gets its
answer in one place. A permit ends only the list it came from.
"""
from __future__ import annotations

from relayd.config import ConfigError
from relayd.domains import AddressClasses
from relayd.networks import MyNetworks
from relayd.paramtypes import split_list
from relayd.pipeline.context import SessionView
from relayd.pipeline.dispatcher import compile_restrictions
from relayd.pipeline.policy import SessionPolicy
from relayd.pipeline.registry import CheckRegistry
from relayd.smtp.replies import Reply

# The stages, in the order Postfix evaluates them at RCPT time, then the message stages.
STAGE_PARAMETERS = (
    ("client", "smtpd_client_restrictions"),
    ("helo", "smtpd_helo_restrictions"),
    ("sender", "smtpd_sender_restrictions"),
    ("relay", "smtpd_relay_restrictions"),
    ("recipient", "smtpd_recipient_restrictions"),
    ("data", "smtpd_data_restrictions"),
    ("end_of_data", "smtpd_end_of_data_restrictions"),
)

# smtpd_reject_unlisted_* run these checks (when a plugin provides them) unless a
# list already did.
_IMPLICIT = (("smtpd_reject_unlisted_recipient", "reject_unlisted_recipient"),
             ("smtpd_reject_unlisted_sender", "reject_unlisted_sender"))

# Postfix refuses to start unless one of these guards relaying (smtpd_check.c).
_RELAY_GUARDS = {"reject_unauth_destination", "defer_unauth_destination", "reject", "defer",
                 "defer_if_permit", "check_relay_domains"}


class Restrictions:
    """The compiled restriction lists of one configuration."""

    def __init__(self, config, registry: CheckRegistry | None = None):
        self.config = config
        self.registry = registry or CheckRegistry.from_entry_points()
        class_names = [c.lower() for c in config["smtpd_restriction_classes"]]
        self.classes = {name: self._compile(name, _class_words(config, name), class_names)
                        for name in class_names}
        self.lists = {stage: self._compile(parameter, config[parameter], class_names, stage)
                      for stage, parameter in STAGE_PARAMETERS}
        guarded = {e.name for e in self.lists["relay"] + self.lists["recipient"]}
        if not guarded & _RELAY_GUARDS:
            raise ConfigError(
                "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify "
                "at least one working instance of: reject_unauth_destination, "
                "defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains",
                parameter="smtpd_relay_restrictions")
        self.delay_reject = config["smtpd_delay_reject"]
        self.soft_bounce = config["soft_bounce"]
        self.implicit = {name: self._compile(parameter, [name], class_names)
                         for parameter, name in _IMPLICIT
                         if config[parameter] and self.registry.get(name) is not None}
        self._class_names = class_names
        self._values: dict[tuple, tuple] = {}
        # Read the domain and network lists now, so that a bad one stops startup
        # instead of failing the first RCPT.
        AddressClasses.of(config)
        MyNetworks.of(config)

    def _compile(self, parameter: str, words: list[str], class_names, stage: str | None = None):
        return compile_restrictions(parameter, words, self.registry, config=self.config,
                                    classes=class_names, stage=stage)

    def compile_value(self, words: tuple[str, ...], stage: str):
        """Compile restrictions found as an access-table value (cached); ConfigError
        for an unknown name, which the caller turns into a 451 server error."""
        key = (words, stage)
        elements = self._values.get(key)
        if elements is None:
            if len(self._values) > 1000:
                self._values.clear()
            elements = self._values[key] = compile_restrictions(
                "access table result", words, self.registry, classes=self._class_names)
        return elements

    def plugins_used(self) -> set[str]:
        """The plugins (labels) whose checks these restriction lists name."""
        elements = [e for group in (self.lists, self.classes, self.implicit)
                    for compiled in group.values() for e in compiled]
        return {e.spec.plugin for e in elements if e.spec is not None}

    def session(self, view: SessionView, notes: dict | None = None) -> SessionPolicy:
        """The policy object of one SMTP session; the driver calls its on_* methods."""
        return SessionPolicy(self, view, notes)

    def check_recipient(self, session: SessionView, sender: str, recipient: str,
                        notes: dict | None = None) -> Reply | None:
        """One RCPT judged on its own, without logging: the call the session driver
        made before it kept a :class:`SessionPolicy` per session."""
        policy = self.session(session, notes)
        policy.log_rejects = False
        policy.sender = sender
        return policy.on_rcpt(recipient)


def _class_words(config, name: str) -> list[str]:
    """The restriction class *name*: a parameter relayd does not declare (its
    value is main.cf text), split as a list."""
    try:
        return split_list(config[name])
    except KeyError:
        raise ConfigError(f"restriction class {name} is not defined: specify "
                          f"\"{name} = restrictions...\"",
                          parameter="smtpd_restriction_classes") from None


__all__ = ["Restrictions", "STAGE_PARAMETERS"]

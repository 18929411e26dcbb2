"""Who may send as whom: smtpd_sender_login_maps and the *_sender_login_mismatch checks.

The table maps a sender address (searched as Postfix's check_mail_addr_find
does: the address, user@, user for a local domain, @domain) to the login
names, separated by commas or blanks, that may use it. Worded as
smtpd_check.c's reject_auth_sender_login_mismatch and
reject_unauth_sender_login_mismatch (553 5.7.1). A table that cannot answer
raises TemporaryLookupError, which the dispatcher turns into a 451.
"""
from __future__ import annotations

import re

from relayd.config.derived import PerConfig
from relayd.pipeline.context import CheckContext
from relayd.pipeline.verdicts import DUNNO, Reject
from relayd.rewrite.maps import AddressMaps
from relayd.smtp.replies import R553_SENDER_NOT_LOGGED_IN, R553_SENDER_NOT_OWNED

_OWNERS = re.compile(r"[\s,]+")


class SenderLogins(PerConfig):
    """smtpd_sender_login_maps, opened once per configuration."""

    def __init__(self, config):
        self.maps = AddressMaps(config, "smtpd_sender_login_maps")

    def owners(self, sender: str) -> list[str] | None:
        """The login names that own ``sender``, or None when the table does not list it."""
        found = self.maps.find(sender) if self.maps and sender else None
        return None if found is None else [n for n in _OWNERS.split(found[0]) if n]


def _authenticated_mismatch(ctx: CheckContext, allow_unknown: bool):
    user = ctx.session.sasl_username
    if not user or not ctx.sender:
        return DUNNO
    logins = SenderLogins.of(ctx.config)
    if not logins.maps:
        return DUNNO
    owners = logins.owners(ctx.sender)
    if owners is None and allow_unknown:
        return DUNNO
    if owners and any(user.casefold() == name.casefold() for name in owners):
        return DUNNO
    return Reject(R553_SENDER_NOT_OWNED.format(ctx.sender, user))


def reject_authenticated_sender_login_mismatch(ctx: CheckContext):
    """A logged-in client must own the sender address (an unlisted sender is refused too)."""
    return _authenticated_mismatch(ctx, allow_unknown=False)


def reject_unauthenticated_sender_login_mismatch(ctx: CheckContext):
    """A sender address that has an owner needs a logged-in client."""
    if ctx.session.sasl_username or not ctx.sender:
        return DUNNO
    if SenderLogins.of(ctx.config).owners(ctx.sender) is None:
        return DUNNO
    return Reject(R553_SENDER_NOT_LOGGED_IN.format(ctx.sender))


def reject_sender_login_mismatch(ctx: CheckContext):
    """Both of the above."""
    verdict = reject_authenticated_sender_login_mismatch(ctx)
    return verdict if verdict is not DUNNO else reject_unauthenticated_sender_login_mismatch(ctx)


def reject_known_sender_login_mismatch(ctx: CheckContext):
    """As reject_sender_login_mismatch, but a logged-in client may use an unlisted sender."""
    verdict = _authenticated_mismatch(ctx, allow_unknown=True)
    return verdict if verdict is not DUNNO else reject_unauthenticated_sender_login_mismatch(ctx)


def register(registry) -> None:
    """Entry point of the built-in sender-login plugin."""
    for func in (reject_sender_login_mismatch, reject_authenticated_sender_login_mismatch,
                 reject_unauthenticated_sender_login_mismatch, reject_known_sender_login_mismatch):
        registry.add(func.__name__, func)

"""Relay control: the checks that keep relayd from being an open relay.

``permit_mynetworks``, ``permit_sasl_authenticated``,
``reject_unauth_destination``, ``defer_unauth_destination``,
``permit_auth_destination`` and the generic ``permit`` / ``reject`` /
``defer``, as postconf(5) defines them. A destination is "authorised" when
the recipient, resolved as trivial-rewrite resolves it, carries no
sender-specified routing and its domain is in an address class other than
default (:meth:`relayd.domains.AddressClasses.authorised`).
"""
from __future__ import annotations

from relayd.domains import AddressClasses
from relayd.networks import MyNetworks
from relayd.pipeline.context import CheckContext
from relayd.pipeline.verdicts import DUNNO, OK, Defer, Reject
from relayd.smtp.replies import (R450_ACCESS_DENIED, R454_RELAY_DEFERRED,
                                 R554_ACCESS_DENIED, R554_RELAY_DENIED)

# What Postfix names in "<name>: Class rejected: ..." for each stage.
_STAGE_CLASS = {
    "client": "Client host",
    "helo": "Helo command",
    "sender": "Sender address",
    "relay": "Recipient address",
    "recipient": "Recipient address",
    "data": "Data command",
    "end_of_data": "End-of-data",
}


def _who(ctx: CheckContext) -> str:
    if ctx.stage == "client":
        return f"{ctx.session.client_name}[{ctx.session.client_addr}]"
    if ctx.stage == "helo":
        return ctx.session.helo_name
    if ctx.stage == "sender":
        return ctx.sender or ""
    return ctx.recipient or ""


def permit(ctx: CheckContext):
    """permit: accept."""
    return OK


def reject(ctx: CheckContext):
    """reject: 554 5.7.1 <name>: Class rejected: Access denied."""
    return Reject(R554_ACCESS_DENIED.format(_who(ctx), _STAGE_CLASS[ctx.stage]))


def defer(ctx: CheckContext):
    """defer: 450 4.7.1 <name>: Class rejected: Access denied."""
    return Defer(R450_ACCESS_DENIED.format(_who(ctx), _STAGE_CLASS[ctx.stage]))


def permit_mynetworks(ctx: CheckContext):
    """permit_mynetworks: the client address matches $mynetworks."""
    return OK if ctx.session.client_addr in MyNetworks.of(ctx.config) else DUNNO


def permit_sasl_authenticated(ctx: CheckContext):
    """permit_sasl_authenticated: the client logged in with SMTP AUTH."""
    return OK if ctx.session.sasl_username else DUNNO


def permit_auth_destination(ctx: CheckContext):
    """permit_auth_destination: the recipient is ours or a relay domain's."""
    return OK if AddressClasses.of(ctx.config).authorised(ctx.recipient or "") else DUNNO


def reject_unauth_destination(ctx: CheckContext):
    """reject_unauth_destination: 554 5.7.1 <rcpt>: Relay access denied."""
    if ctx.recipient is None or AddressClasses.of(ctx.config).authorised(ctx.recipient):
        return DUNNO
    return Reject(R554_RELAY_DENIED.format(ctx.recipient))


def defer_unauth_destination(ctx: CheckContext):
    """defer_unauth_destination: as reject_unauth_destination, but 454 4.7.1."""
    if ctx.recipient is None or AddressClasses.of(ctx.config).authorised(ctx.recipient):
        return DUNNO
    return Defer(R454_RELAY_DEFERRED.format(ctx.recipient))


def register(registry) -> None:
    """Entry point of the built-in relay-control plugin."""
    for func in (permit, reject, defer, permit_mynetworks, permit_sasl_authenticated,
                 permit_auth_destination, reject_unauth_destination, defer_unauth_destination):
        registry.add(func.__name__, func)

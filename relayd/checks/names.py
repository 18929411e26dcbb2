"""What a rejection names: ``<name>: Class rejected: ...``.

Postfix names the object being judged and its class (smtpd_check.c
SMTPD_NAME_*): the client as ``host[addr]``, the HELO name, the sender, the
recipient, or the DATA / END-OF-MESSAGE command. A generic restriction
(reject, defer, defer_if_permit...) names the object of the list it is in.
"""
from __future__ import annotations

from relayd.pipeline.context import CheckContext

CLIENT_CLASS = "Client host"
REVERSE_CLIENT_CLASS = "Unverified Client host"   # judged by its PTR name, not verified
HELO_CLASS = "Helo command"
SENDER_CLASS = "Sender address"
RECIPIENT_CLASS = "Recipient address"

STAGE_CLASS = {
    "client": CLIENT_CLASS,
    "helo": HELO_CLASS,
    "sender": SENDER_CLASS,
    "relay": RECIPIENT_CLASS,
    "recipient": RECIPIENT_CLASS,
    "data": "Data command",
    "end_of_data": "End-of-data",
}


def client_name(ctx: CheckContext) -> str:
    """``host[addr]``, as Postfix logs and names the client."""
    return f"{ctx.session.client_name}[{ctx.session.client_addr}]"


def stage_name(ctx: CheckContext) -> str:
    """The name in ``<...>`` for the list being evaluated."""
    return ctx.reply_name


def stage_class(ctx: CheckContext) -> str:
    """The class Postfix names for the list being evaluated."""
    return STAGE_CLASS[ctx.stage]

"""Recipient validation: ``reject_unlisted_recipient``, ``reject_unlisted_sender``.

As Postfix's check_rcpt_maps() (src/smtpd/smtpd_check.c) decides it for
the address resolved the way trivial-rewrite resolves it:

1. known when recipient_canonical_maps (sender_canonical_maps for a
   sender), canonical_maps or virtual_alias_maps has it;
2. relocated_maps has it: ``550 5.1.6 <a>: Recipient address rejected:
   User has moved to NEW``;
3. by the domain's class (relayd.domains): a virtual alias domain rejects
   what step 1 did not find ("User unknown in virtual alias table"); a
   local domain rejects what local_recipient_maps lacks, a virtual mailbox
   domain what virtual_mailbox_maps lacks, a relay domain what
   relay_recipient_maps lacks — in these three cases only when the
   parameter is not empty; other domains pass.

Codes come from unknown_virtual_alias_reject_code,
unknown_local_recipient_reject_code, unknown_virtual_mailbox_reject_code
and unknown_relay_recipient_reject_code (all 550); the DSN's first digit
follows the code. A table that cannot answer gives ``451 4.3.0 <address>:
Temporary lookup failure``, one that answers something unusable ``451
4.3.5 Server configuration error``, as check_mail_addr_find() in
smtpd_check.c.
"""
from __future__ import annotations

import logging

from relayd.config.derived import PerConfig
from relayd.domains import LOCAL, RELAY, VIRTUAL_ALIAS, VIRTUAL_MAILBOX, AddressClasses
from relayd.pipeline.context import CheckContext
from relayd.pipeline.dispatcher import lookup_failure_reply
from relayd.pipeline.verdicts import DUNNO, Defer, refusal
from relayd.rewrite.maps import AddressMaps
from relayd.rewrite.tables import warn_virtual_maps
from relayd.smtp.replies import R550_USER_MOVED, R550_USER_UNKNOWN, Reply, split_status
from relayd.tables.base import TemporaryLookupError

log = logging.getLogger("relayd.smtpd")

RECIPIENT, SENDER = "Recipient address", "Sender address"

# Local names that are always deliverable (smtpd_check.c: absorbed by qmgr / made by bounce).
_ALWAYS_LOCAL = ("postmaster", "mailer-daemon")


class RecipientTables(PerConfig):
    """The tables recipient validation consults, opened once per configuration."""

    def __init__(self, config):
        self.config = config
        self.classes = AddressClasses.of(config)
        own = {RECIPIENT: AddressMaps(config, "recipient_canonical_maps"),
               SENDER: AddressMaps(config, "sender_canonical_maps")}
        warn_virtual_maps(config)
        common = [AddressMaps(config, "canonical_maps"), AddressMaps(config, "virtual_alias_maps")]
        # Per address class, the map sets that have a table to ask.
        self.known = {address_class: [m for m in (maps, *common) if m]
                      for address_class, maps in own.items()}
        self.relocated = AddressMaps(config, "relocated_maps")
        self.local = AddressMaps(config, "local_recipient_maps")
        self.relay = AddressMaps(config, "relay_recipient_maps")
        self.virtual_mailbox = AddressMaps(config, "virtual_mailbox_maps")
        self.relocated_prefix = config["relocated_prefix_enable"]
        self.show_table = config["show_user_unknown_table_name"]
        self.special = (*_ALWAYS_LOCAL, config["double_bounce_sender"].lower())

    def unlisted_reply(self, address: str, address_class: str = RECIPIENT) -> Reply | None:
        """The reply rejecting ``address`` as unknown or moved, or None when it passes."""
        resolved = self.classes.resolve(address)
        key = f"{resolved.localpart}@{resolved.domain}"
        if any(maps.find(key) for maps in self.known[address_class]):
            return None
        moved = self.relocated.find(key) if self.relocated else None
        if moved is not None:
            return self._moved(address, address_class, moved[0])
        kind = self.classes.classify(resolved.domain)
        if kind == VIRTUAL_ALIAS:
            return self._unknown(address, address_class,
                                 self.config["unknown_virtual_alias_reject_code"], "virtual alias")
        if kind == LOCAL and self.local and resolved.localpart.lower() not in self.special \
                and not self.local.find(key):
            return self._unknown(address, address_class,
                                 self.config["unknown_local_recipient_reject_code"],
                                 "local recipient")
        if kind == VIRTUAL_MAILBOX and self.virtual_mailbox and not self.virtual_mailbox.find(key):
            return self._unknown(address, address_class,
                                 self.config["unknown_virtual_mailbox_reject_code"],
                                 "virtual mailbox")
        if kind == RELAY and self.relay and not self.relay.find(key):
            return self._unknown(address, address_class,
                                 self.config["unknown_relay_recipient_reject_code"],
                                 "relay recipient")
        return None

    def _unknown(self, address: str, address_class: str, code: int, table: str) -> Reply:
        reply = R550_USER_UNKNOWN.format(address, address_class,
                                         f" in {table} table" if self.show_table else "")
        status = "5.1.0" if address_class == SENDER else reply.status
        return _with_code(reply, code, status)

    def _moved(self, address: str, address_class: str, value: str) -> Reply:
        if self.relocated_prefix:
            return R550_USER_MOVED.format(address, address_class, value)
        # relocated_prefix_enable = no: the value is "5.x.y text" itself (Postfix 3.11).
        status, text = split_status(value)
        if status[:1] not in ("4", "5") or not text.strip():
            status, text = "5.2.0", "Mailbox is unavailable"
        reply = R550_USER_MOVED.with_text(f"<{address}>: {address_class} rejected: {text.strip()}")
        return _with_code(reply, 550, status)


def _with_code(reply: Reply, code: int, status: str) -> Reply:
    """``reply`` with reply code ``code`` and status ``status`` (its class follows the code)."""
    return Reply(code, status, reply.text).with_code(code)


def _verdict(ctx: CheckContext, address: str, address_class: str):
    try:
        reply = RecipientTables.of(ctx.config).unlisted_reply(address, address_class)
    except TemporaryLookupError as exc:
        # Named after the address validated, which reject_unlisted_sender's
        # list (the recipient's, perhaps) would not name.
        log.warning("%s validation: lookup error: %s", address_class, exc)
        return Defer(lookup_failure_reply(exc, address))
    if reply is None:
        return DUNNO
    return refusal(reply)


def reject_unlisted_recipient(ctx: CheckContext):
    """reject_unlisted_recipient: 550 5.1.1 ... User unknown in ... table / 5.1.6 moved."""
    if not ctx.recipient:
        return DUNNO
    return _verdict(ctx, ctx.recipient, RECIPIENT)


def reject_unlisted_sender(ctx: CheckContext):
    """reject_unlisted_sender: the same test for MAIL FROM (5.1.0); the null sender passes."""
    if not ctx.sender:
        return DUNNO
    return _verdict(ctx, ctx.sender, SENDER)


def register(registry) -> None:
    """Entry point of the built-in recipient-validation plugin."""
    for func in (reject_unlisted_recipient, reject_unlisted_sender):
        registry.add(func.__name__, func)

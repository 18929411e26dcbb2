"""One recipient's result of a delivery attempt, as a value.

A delivery agent says what came of each recipient with an :class:`Outcome`;
the queue manager journals it (docs/queue-format.md), the queue keeps it
with the recipient, and bounce(8) builds the delivery status notification
from its fields — the shape of Postfix's DSN (src/global/dsn.h): status,
action, reason, and the remote MTA and its reply when a server's reply
decided.

Queues written before results were values hold ``"<dsn> <reason>"`` text;
:func:`from_text` reads that form back.
"""
from __future__ import annotations

from dataclasses import dataclass

from relayd.smtp.replies import is_status

__all__ = ["Outcome", "SENT", "DEFERRED", "BOUNCED", "from_text"]

SENT, DEFERRED, BOUNCED = "sent", "deferred", "bounced"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The fate of one recipient: ``status`` is SENT, DEFERRED or BOUNCED,
    ``dsn`` the RFC 3463 code, ``reason`` Postfix's wording for the log and
    the notification (e.g. "host mx[192.0.2.1] said: 550 5.1.1 ... (in reply
    to RCPT TO command)"), ``relay`` the "HOST[IP]:PORT" or "none".
    ``remote`` and ``reply`` are the server that decided and its reply as
    received ("550 5.1.1 No such user"); both "" when no reply decided."""
    status: str
    dsn: str
    reason: str
    relay: str = "none"
    remote: str = ""
    reply: str = ""

    @property
    def reply_code(self) -> int:
        """The remote reply's code, 0 when there was none."""
        return int(self.reply[:3]) if self.reply else 0

    def __str__(self) -> str:
        """``"<dsn> <reason>"``: the text hooks and mailq show (the form older
        queues stored)."""
        return f"{self.dsn} {self.reason}" if self.dsn else self.reason


def from_text(status: str, text: str) -> Outcome:
    """The Outcome of a recipient as older queues stored it: ``"<dsn>
    <reason>"`` text, where smtp(8)'s reason ``host HOST[IP] said: REPLY (in
    reply to X command)`` names the remote MTA and its reply. Text that starts
    with no status gets none ("") and stays the whole reason."""
    dsn, _, reason = text.partition(" ")
    if not is_status(dsn):
        dsn, reason = "", text
    remote, reply = _said(reason)
    return Outcome(status, dsn, reason, remote=remote, reply=reply)


def _said(reason: str) -> tuple[str, str]:
    """(host, reply) from smtp's "host HOST[IP] said: REPLY (in reply to
    X command)"; ("", "") for any other reason. Found with string searches: the
    reply is a next hop's text, parsed in linear time."""
    said, tail = reason.find("] said: "), reason.rfind(" (in reply to ")
    if not reason.startswith("host ") or not reason.endswith(" command)") or not 0 <= said < tail:
        return "", ""
    host, bracket, ip = reason[5:said].partition("[")
    reply = reason[said + 8:tail]
    if not host or not bracket or " " in host or "]" in ip:
        return "", ""
    if not (reply[:3].isascii() and reply[:3].isdigit() and reply[3:4] in (" ", "-")):
        return "", ""
    return host, reply

"""The envelope of a queued message: sender, recipients and how it arrived.

An envelope is stored in the journal as UTF-8 JSON (see docs/queue-format.md).
Readers ignore keys they do not know and fill missing ones with defaults, so
a later version may add fields without a format change. A recipient's last
outcome is an object of :class:`Outcome`'s fields; envelopes written before
outcomes were values hold its text under "reply", read with
:func:`relayd.queue.outcome.from_text`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from relayd.queue.outcome import BOUNCED as BOUNCED_OUTCOME
from relayd.queue.outcome import DEFERRED as DEFERRED_OUTCOME
from relayd.queue.outcome import SENT, Outcome, from_text

# Recipient statuses; "pending" and "deferred" still need a delivery attempt.
PENDING = "pending"
DELIVERED = "delivered"
BOUNCED = "bounced"
DEFERRED = "deferred"

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass
class Recipient:
    """One envelope recipient and where its delivery stands."""

    address: str                  # envelope recipient as relayed
    original: str | None = None   # as the client gave it, if rewritten
    status: str = PENDING         # "pending" | "delivered" | "bounced" | "deferred"
    outcome: Outcome | None = None   # of the last delivery attempt (for mailq and DSNs)

    @property
    def is_done(self) -> bool:
        """True once delivered or bounced: no further attempt is due."""
        return self.status in (DELIVERED, BOUNCED)


@dataclass
class Envelope:
    """Sender, recipients and the client facts Postfix keeps in a queue file."""

    sender: str                   # "" for the null sender
    recipients: list[Recipient]
    arrival_time: float           # time.time() at acceptance
    client_name: str = "unknown"
    client_addr: str = ""
    helo: str = ""
    protocol: str = "ESMTP"
    size: int = 0                 # message size in octets
    params: dict[str, str] = field(default_factory=dict)   # e.g. {"BODY": "8BITMIME"}
    attrs: dict[str, str] = field(default_factory=dict)    # free-form (filter, notes)

    def to_json(self) -> bytes:
        """The envelope as compact UTF-8 JSON."""
        # Built by hand: dataclasses.asdict() deep-copies and was a measurable cost per message.
        data = {
            "sender": self.sender,
            "recipients": [{"address": r.address, "original": r.original, "status": r.status,
                            "outcome": r.outcome and _outcome_json(r.outcome)}
                           for r in self.recipients],
            "arrival_time": self.arrival_time, "client_name": self.client_name,
            "client_addr": self.client_addr, "helo": self.helo, "protocol": self.protocol,
            "size": self.size, "params": self.params, "attrs": self.attrs,
        }
        return _ENCODER.encode(data).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> "Envelope":
        """Parse :meth:`to_json` output; unknown keys are ignored (forward compatibility).

        Raises ValueError when the data is not an envelope.
        """
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict) or not isinstance(raw.get("recipients"), list):
            raise ValueError("envelope is not a JSON object with a recipient list")
        env_keys = {f.name for f in fields(cls)} - {"recipients"}
        try:
            recipients = [_recipient(r) for r in raw["recipients"]]
            return cls(recipients=recipients, **{k: v for k, v in raw.items() if k in env_keys})
        except (TypeError, AttributeError) as exc:  # a required field is missing, or not an object
            raise ValueError(f"malformed envelope: {exc}") from None


_RCPT_KEYS = ("address", "original", "status")
_OUTCOME_KEYS = tuple(f.name for f in fields(Outcome))
# The outcome a recipient's status implies, for envelopes that stored only its text.
_STATUS_OUTCOME = {DELIVERED: SENT, BOUNCED: BOUNCED_OUTCOME, DEFERRED: DEFERRED_OUTCOME}


def _outcome_json(outcome: Outcome) -> dict:
    return {key: getattr(outcome, key) for key in _OUTCOME_KEYS}


def _recipient(raw: dict) -> Recipient:
    rcpt = Recipient(**{k: v for k, v in raw.items() if k in _RCPT_KEYS})
    outcome = raw.get("outcome")
    if outcome is not None:
        rcpt.outcome = Outcome(**{k: v for k, v in outcome.items() if k in _OUTCOME_KEYS})
    elif raw.get("reply") and rcpt.status in _STATUS_OUTCOME:   # written before outcomes were values
        rcpt.outcome = from_text(_STATUS_OUTCOME[rcpt.status], str(raw["reply"]))
    return rcpt

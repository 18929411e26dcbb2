"""The envelope of a queued message: sender, recipients and how it arrived.

An envelope is stored in the journal as UTF-8 JSON (see docs/queue-format.md).
Readers ignore keys they do not know and fill missing ones with defaults, so
a later version may add fields without a format change.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

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
    reply: str = ""               # last reply text / diagnostic (for logs and DSNs)

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
                            "reply": r.reply} for r in self.recipients],
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
        rcpt_keys = {f.name for f in fields(Recipient)}
        env_keys = {f.name for f in fields(cls)} - {"recipients"}
        try:
            recipients = [Recipient(**{k: v for k, v in r.items() if k in rcpt_keys})
                          for r in raw["recipients"]]
            return cls(recipients=recipients, **{k: v for k, v in raw.items() if k in env_keys})
        except (TypeError, AttributeError) as exc:  # a required field is missing, or not an object
            raise ValueError(f"malformed envelope: {exc}") from None

"""The one value a check receives.

A check gets a single frozen :class:`CheckContext`, so a field added later
never breaks a plugin written today. ``notes`` is the one mutable part: a
per-session dict plugins may use to remember things between stages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# How a client name was found (Postfix's SMTPD_PEER_CODE_*, smtpd.h): the
# lookups succeeded; failed temporarily; failed for good (or were not made:
# smtpd_peername_lookup = no); the name's addresses do not include the client's.
NAME_OK, NAME_TEMP, NAME_PERM, NAME_FORGED = 2, 4, 5, 6


@dataclass(frozen=True)   # not slots: replace() copies the instance dict in one step
class SessionView:
    """What is known about the SMTP client, read-only.

    ``pipelined_early`` is set by the session driver once the client sent
    a command before the reply to its previous one was due without being
    allowed to pipeline (before the greeting, or after HELO instead of EHLO):
    Postfix's SMTPD_FLAG_ILL_PIPELINING, which reject_unauth_pipelining tests.

    The ``ccert_*`` fields describe the client certificate of a TLS session,
    set when the handshake completes, named as Postfix's policy protocol
    names them: ``ccert_fingerprint`` (SHA-256 of the certificate, AB:CD:...)
    and ``ccert_pubkey_fingerprint`` (of its public key) are empty when the
    client presented none; ``ccert_trusted`` says whether it verified
    against smtpd_tls_CAfile.

    ``client_name`` is the verified name (its A/AAAA records list the
    address) or "unknown"; ``reverse_client_name`` the PTR name, verified
    or not, or "unknown"; their ``*_status`` say why a name is unknown
    (:data:`NAME_OK`, :data:`NAME_TEMP`, :data:`NAME_PERM`,
    :data:`NAME_FORGED`), as smtpd_peer.c's name_status and
    reverse_name_status do. Left out, the reverse name is the client name
    and a status follows its name (OK for a name, PERM for "unknown").
    """

    client_addr: str
    client_name: str = "unknown"
    client_port: int = 0
    helo_name: str = ""
    protocol: str = "SMTP"
    tls_active: bool = False
    sasl_username: str = ""
    sasl_method: str = ""
    pipelined_early: bool = False
    ccert_subject: str = ""
    ccert_issuer: str = ""
    ccert_fingerprint: str = ""
    ccert_pubkey_fingerprint: str = ""
    ccert_trusted: bool = False
    reverse_client_name: str | None = None
    client_name_status: int | None = None
    reverse_client_name_status: int | None = None

    def replace(self, **changes) -> "SessionView":
        """A copy with ``changes`` (as dataclasses.replace, without its walk of
        the field definitions: the policy changes its view at every HELO)."""
        unknown = changes.keys() - _SESSION_FIELDS
        if unknown:
            raise TypeError(f"SessionView has no field {', '.join(sorted(unknown))}")
        new = object.__new__(SessionView)
        fields = new.__dict__   # written directly: the frozen class refuses setattr
        fields.update(self.__dict__)
        fields.update(changes)
        return new

    def __post_init__(self) -> None:
        if self.reverse_client_name is None:
            object.__setattr__(self, "reverse_client_name", self.client_name)
        if self.client_name_status is None:
            object.__setattr__(self, "client_name_status", _status_of(self.client_name))
        if self.reverse_client_name_status is None:
            object.__setattr__(self, "reverse_client_name_status",
                               _status_of(self.reverse_client_name))


_SESSION_FIELDS = frozenset(SessionView.__dataclass_fields__)


def _status_of(name: str) -> int:
    return NAME_PERM if name == "unknown" else NAME_OK


@dataclass(frozen=True, slots=True)
class CheckContext:
    """Everything a check may look at.

    ``stage`` names the restriction list being evaluated (``client``,
    ``helo``, ``sender``, ``relay``, ``recipient``, ``data``,
    ``end_of_data``); ``sender`` / ``recipient`` are the envelope addresses
    known at that point ("" is the null sender, ``None`` means not yet
    given); ``args`` are the arguments written after the check's name in
    main.cf; ``config`` is the effective :class:`relayd.config.Config`.
    """

    stage: str
    session: SessionView
    config: Any
    sender: str | None = None
    recipient: str | None = None
    args: tuple[str, ...] = ()
    notes: dict = field(default_factory=dict)

    @property
    def reply_name(self) -> str:
        """What a reply about this list names in ``<...>`` (smtpd_check.c's
        reply_name): the client as ``host[addr]``, the HELO name, the sender,
        the recipient, or the DATA / END-OF-MESSAGE command."""
        s = self.session
        return {"client": f"{s.client_name}[{s.client_addr}]", "helo": s.helo_name,
                "sender": self.sender or "", "data": "DATA",
                "end_of_data": "END-OF-MESSAGE"}.get(self.stage, self.recipient or "")

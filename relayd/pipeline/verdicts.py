"""Verdicts: what a check says about the mail at hand.

The vocabulary is Postfix's access(5): a check returns one of these values
and the dispatcher, never the check, applies Postfix's evaluation rules to
it (smtpd_check.c generic_checks):

* decisive verdicts end the restriction list: :class:`Permit` (OK),
  :class:`Reject` / :class:`Defer` (a final 5xx / 4xx reply) and
  :class:`Discard` (accept and drop the whole message);
* the others let the list go on: :class:`Dunno`, the deferred decisions
  :class:`DeferIfPermit` / :class:`DeferIfReject`, the log-only
  :class:`Warn` / :class:`Info`, the message actions :class:`Hold`,
  :class:`Prepend`, :class:`Redirect`, :class:`Filter`, :class:`Bcc`
  (collected for the queue), the modifier :class:`WarnIfReject` and
  :class:`RestrictionList` (evaluate more restrictions in place, as an
  access-table result or a restriction class does).

Texts in message actions are the log text Postfix writes for them
(``<name>: Class triggers HOLD action``), so a plugin decides what its
log line says.
"""
from __future__ import annotations

from dataclasses import dataclass

from relayd.smtp.replies import Reply
from relayd.smtp.text import header_name, printable


@dataclass(frozen=True, slots=True)
class Verdict:
    """Base of all verdicts. ``decisive`` verdicts end the restriction list."""

    decisive = True


@dataclass(frozen=True, slots=True)
class Permit(Verdict):
    """OK: accept as far as this restriction list is concerned."""


@dataclass(frozen=True, slots=True)
class Dunno(Verdict):
    """DUNNO: no opinion; evaluation goes on with the next element."""

    decisive = False


@dataclass(frozen=True, slots=True)
class Reject(Verdict):
    """REJECT with a permanent (5xx) reply."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class Defer(Verdict):
    """DEFER with a temporary (4xx) reply: the client will try again."""

    reply: Reply


def refusal(reply: Reply) -> "Reject | Defer":
    """The verdict that refuses with ``reply``: Reject for a permanent (5xx)
    reply, Defer for a temporary one (Postfix: the reply code decides)."""
    return Reject(reply) if reply.is_permanent else Defer(reply)


@dataclass(frozen=True, slots=True)
class DeferIfPermit(Verdict):
    """DEFER_IF_PERMIT: if the request is finally permitted, defer it with
    ``reply`` instead (the first such reason of a stage is kept)."""

    reply: Reply
    decisive = False


@dataclass(frozen=True, slots=True)
class DeferIfReject(Verdict):
    """DEFER_IF_REJECT: if a later restriction of this list rejects (5xx),
    send ``reply`` instead of the rejection."""

    reply: Reply
    decisive = False


@dataclass(frozen=True, slots=True)
class WarnIfReject(Verdict):
    """warn_if_reject: the next restriction only logs the rejection it would make."""

    decisive = False


@dataclass(frozen=True, slots=True)
class Warn(Verdict):
    """WARN: log ``text`` as a warning and go on."""

    text: str
    decisive = False


@dataclass(frozen=True, slots=True)
class Info(Verdict):
    """INFO: log ``text`` and go on."""

    text: str
    decisive = False


@dataclass(frozen=True, slots=True)
class Hold(Verdict):
    """HOLD: put the whole message in the hold queue; ``text`` is logged."""

    text: str
    decisive = False


@dataclass(frozen=True, slots=True)
class Discard(Verdict):
    """DISCARD: claim success, then drop the whole message; ``text`` is logged.
    No further restriction of the transaction is evaluated."""

    text: str


@dataclass(frozen=True, slots=True)
class Prepend(Verdict):
    """PREPEND: add ``header`` ("Name: value") at the top of the message. A
    text that is not one header line (:func:`is_header_line`) is logged and
    ignored."""

    header: str
    decisive = False


def is_header_line(text: str) -> bool:
    """Whether ``text`` is one header line a PREPEND may add: it starts with a
    header name and a colon (Postfix's is_header()), and nothing but a tab in
    it is unprintable (no CR, LF, NUL, other controls, Unicode line breaks)."""
    flat = text.replace("\t", " ")
    return printable(flat) == flat and header_name(flat.encode()) is not None


@dataclass(frozen=True, slots=True)
class Redirect(Verdict):
    """REDIRECT: deliver the message to ``address`` only (the last one wins)."""

    address: str
    text: str = ""
    decisive = False


@dataclass(frozen=True, slots=True)
class Filter(Verdict):
    """FILTER: route the message through ``destination`` ("transport:nexthop";
    the last one wins)."""

    destination: str
    text: str = ""
    decisive = False


@dataclass(frozen=True, slots=True)
class Bcc(Verdict):
    """BCC: send a copy of the message to ``address``."""

    address: str
    text: str = ""
    decisive = False


@dataclass(frozen=True, slots=True)
class RestrictionList(Verdict):
    """Evaluate ``restrictions`` (names as written in main.cf) right here,
    as Postfix does with an access-table value that is not an action.
    ``stage`` names whose name and class the nested restrictions report
    (``recipient`` for a check_recipient_access result)."""

    restrictions: tuple[str, ...]
    stage: str
    decisive = False


#: The message actions a transaction collects for the queue.
MESSAGE_ACTIONS = (Hold, Discard, Prepend, Redirect, Filter, Bcc)

OK = Permit()
DUNNO = Dunno()
WARN_IF_REJECT = WarnIfReject()

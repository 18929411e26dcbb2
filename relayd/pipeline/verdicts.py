"""Verdicts: what a check says about the mail at hand.

The vocabulary is Postfix's access(5): a check returns one of these values
and the dispatcher, never the check, turns it into an SMTP reply and applies
Postfix's evaluation rules. The remaining access(5) actions (HOLD, DISCARD,
WARN, PREPEND, REDIRECT, DEFER_IF_PERMIT, ...) join this module with the
policy issue; a check that needs them today cannot be written yet.
"""
from __future__ import annotations

from dataclasses import dataclass

from relayd.smtp.replies import Reply


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


OK = Permit()
DUNNO = Dunno()

"""What happens to an accepted message: the actions of policy and content checks.

The restriction lists (HOLD, DISCARD, REDIRECT, BCC, FILTER verdicts) and
the header/body checks (the same actions) both decide things about a
message that only matter when it is queued. :func:`disposition` merges
them the way Postfix's cleanup does: DISCARD wins over everything, a HOLD
from either side holds, the last REDIRECT or FILTER counts, BCCs add up.
"""
from __future__ import annotations

from dataclasses import dataclass

from relayd.pipeline.verdicts import Bcc, Discard, Filter, Hold, Prepend, Redirect


@dataclass(frozen=True, slots=True)
class Disposition:
    """How to queue one message. ``redirect`` replaces every recipient."""

    discard: bool = False
    hold: bool = False
    redirect: str | None = None
    bcc: tuple[str, ...] = ()
    filter: str | None = None

    def recipients(self, recipients: list[str]) -> list[str]:
        """The envelope recipients after REDIRECT and BCC."""
        out = [self.redirect] if self.redirect else list(recipients)
        return out + [b for b in self.bcc if b not in out]


NOTHING = Disposition()


def prepended_headers(actions) -> bytes:
    """The PREPEND verdicts of the restriction lists as header lines, in wire form."""
    lines = [a.header for a in actions if type(a) is Prepend]
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8", "replace")


def disposition(actions, content=None) -> Disposition:
    """Merge restriction-list ``actions`` and a content-check result."""
    if not actions and (content is None or _content_is_plain(content)):
        return NOTHING
    discard = any(type(a) is Discard for a in actions)
    hold = any(type(a) is Hold for a in actions)
    redirect = next((a.address for a in reversed(actions) if type(a) is Redirect), None)
    filter_ = next((a.destination for a in reversed(actions) if type(a) is Filter), None)
    bcc = tuple(a.address for a in actions if type(a) is Bcc)
    if content is not None:
        discard = discard or content.discard is not None
        hold = hold or content.hold is not None
        redirect = content.redirect or redirect
        filter_ = content.filter or filter_
        bcc += tuple(content.bcc)
    return Disposition(discard, hold, redirect, bcc, filter_)


def _content_is_plain(content) -> bool:
    return (content.discard is None and content.hold is None and not content.redirect
            and not content.filter and not content.bcc)

"""What a header_checks/body_checks table result does: Postfix's cleanup_act().

A table answers a header or body line with an action ("REJECT text",
"PREPEND X-Tag: yes", ...). :func:`act` carries it out on a message's
:class:`Outcome`, logs it as cleanup(8) does, and says what becomes of the
line (keep it, drop it, replace it, or put a line before it). Ported from
src/cleanup/cleanup_message.c (cleanup_act, cleanup_act_log); replies as in
src/smtpd/smtpd.c and src/global/cleanup_strerror.c.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from relayd.maillog import CLEANUP as log
from relayd.maillog import whatsup
from relayd.smtp.replies import (R451_CONTENT_DEFERRED, R550_CONTENT_REJECTED, Reply, same_class,
                                 split_status, with_class)
from relayd.smtp.text import header_name, printable

HEADER = "header"   # cleanup's log context words
BODY = "body"

# What becomes of the line that matched.
KEEP = "keep"
DROP = "drop"


@dataclass(frozen=True, slots=True)
class Replace:
    """Put *text* in place of the line (REPLACE)."""
    text: str


@dataclass(frozen=True, slots=True)
class Prepend:
    """Output *text* as a line of its own just before the line (PREPEND)."""
    text: str


@dataclass(frozen=True, slots=True)
class LogContext:
    """Who sent the message, for cleanup's log lines:
    ``QID: reject: header ... from ORIGIN; from=<s> to=<r> proto=P helo=<h>: text``.

    ``origin`` is "name[addr]" for a network client; ``recipient`` is the
    last recipient of the envelope, as cleanup logs it. ``sender`` None
    leaves ``from=`` out (a null sender logs ``from=<>``).
    """

    queue_id: str = "NOQUEUE"
    origin: str = "unknown"
    sender: str | None = None
    recipient: str | None = None
    protocol: str | None = None
    helo: str | None = None


@dataclass
class Outcome:
    """What the checks decided for one message so far (mutable while it streams)."""

    reply: Reply | None = None       # REJECT (5xx) or a 4.x.x REJECT / lookup failure (4xx)
    hold: str | None = None          # HOLD: its text ("" when none)
    discard: str | None = None       # DISCARD: its text ("" when none)
    redirect: str | None = None      # REDIRECT user@domain (the last one)
    filter: str | None = None        # FILTER transport:destination (the last one)
    bcc: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # WARN texts, for metrics and tests
    active: bool = True              # False once REJECT/DISCARD/REDIRECT/PASS ended inspection


def log_action(ctx: LogContext, action: str, where: str, content: str, text: str) -> None:
    """One cleanup_act_log() line."""
    log.info("%s", whatsup(ctx.queue_id, action, f"{where} {printable(content[:200])}", ctx.origin,
                           printable(text), sender=ctx.sender, recipient=ctx.recipient or None,
                           protocol=ctx.protocol or None, helo=ctx.helo or None, text_last=True))


# The action word, then its optional text (cleanup_act: strcspn(" \t"), skip blanks).
_COMMAND = re.compile(r"([^ \t]*)[ \t]*(.*)", re.S)


def reject_reply(text: str) -> Reply:
    """The reply for "REJECT text": 550 5.7.1 text, or the text's own DSN;
    a 4.x.x DSN makes it a temporary 451 (smtpd.c, CLEANUP_STAT_DEFER)."""
    if not text:
        return R550_CONTENT_REJECTED
    text = text.strip()
    dsn, rest = split_status(text)
    dsn = dsn or "5.7.1"
    if dsn[0] == "2":
        log.warning("bad DSN action in %s -- need 4.x.x or 5.x.x", text)
        dsn = with_class(dsn, 4)
    template = R451_CONTENT_DEFERRED if same_class(dsn, 4) else R550_CONTENT_REJECTED
    return dataclasses.replace(template, status=dsn, text=printable(rest))


def act(outcome: Outcome, ctx: LogContext, where: str, content: str, value: str,
        map_class: str):
    """Carry out table result *value* for *content* (a header or body line).

    Returns KEEP, DROP, a :class:`Replace` or a :class:`Prepend`.
    """
    command, text = _COMMAND.match(value).groups()
    handler = _ACTIONS.get(command.upper())
    if handler is None:
        log.warning("unknown command in %s map: %s", map_class, value)
        return KEEP
    return handler(outcome, ctx, where, content, text, map_class)


def _reject(outcome, ctx, where, content, text, map_class):
    outcome.reply = reject_reply(text)
    outcome.active = False
    log_action(ctx, "reject", where, content, f"{outcome.reply.status} {outcome.reply.text}")
    return KEEP


def _log_only(action):
    def handler(outcome, ctx, where, content, text, map_class):
        if action == "warning":
            outcome.warnings.append(text)
        log_action(ctx, action, where, content, text)
        return KEEP
    return handler


def _filter(outcome, ctx, where, content, text, map_class):
    if not text:
        log.warning("missing FILTER command argument in %s map", map_class)
    elif ":" not in text:
        log.warning("bad FILTER command %s in %s -- need transport:destination", text, map_class)
    else:
        outcome.filter = text
        log_action(ctx, "filter", where, content, text)
    return KEEP


def _pass(outcome, ctx, where, content, text, map_class):
    log_action(ctx, "pass", where, content, text)
    outcome.active = False
    return KEEP


def _discard(outcome, ctx, where, content, text, map_class):
    log_action(ctx, "discard", where, content, text)
    outcome.discard = text
    outcome.active = False
    return KEEP


def _hold(outcome, ctx, where, content, text, map_class):
    if outcome.hold is None and outcome.discard is None:
        log_action(ctx, "hold", where, content, text)
        outcome.hold = text
    return KEEP


def _header_text_ok(action, where, text, map_class) -> bool:
    """PREPEND/REPLACE text must exist, and be a header where a header is at hand."""
    if not text:
        log.warning("%s action without text in %s map", action, map_class)
        return False
    if where == HEADER and header_name(text.encode("utf-8", "surrogateescape")) is None:
        log.warning('bad %s header text "%s" in %s map -- need "headername: headervalue"',
                    action, text, map_class)
        return False
    return True


def _prepend(outcome, ctx, where, content, text, map_class):
    if not _header_text_ok("PREPEND", where, text, map_class):
        return KEEP
    log_action(ctx, "prepend", where, content, text)
    return Prepend(text)


def _replace(outcome, ctx, where, content, text, map_class):
    if not _header_text_ok("REPLACE", where, text, map_class):
        return KEEP
    log_action(ctx, "replace", where, content, text)
    return Replace(text)


def _redirect(outcome, ctx, where, content, text, map_class):
    if "@" not in text:
        log.warning('bad REDIRECT target "%s" in %s map -- need user@domain', text, map_class)
        return KEEP
    outcome.redirect = text
    log_action(ctx, "redirect", where, content, text)
    # Postfix stops inspecting here too (CLEANUP_FLAG_FILTER_ALL cleared).
    outcome.active = False
    return KEEP


def _bcc(outcome, ctx, where, content, text, map_class):
    if "@" not in text:
        log.warning('bad BCC address "%s" in %s map -- need user@domain', text, map_class)
        return KEEP
    outcome.bcc.append(text)
    log_action(ctx, "bcc", where, content, text)
    return KEEP


def _strip(outcome, ctx, where, content, text, map_class):
    log_action(ctx, "strip", where, content, text)
    return DROP


_ACTIONS = {
    "REJECT": _reject,
    "WARN": _log_only("warning"),
    "INFO": _log_only("info"),
    "FILTER": _filter,
    "PASS": _pass,
    "DISCARD": _discard,
    "HOLD": _hold,
    "PREPEND": _prepend,
    "REPLACE": _replace,
    "REDIRECT": _redirect,
    "BCC": _bcc,
    "STRIP": _strip,
    "IGNORE": lambda *args: DROP,
    "DUNNO": lambda *args: KEEP,
    "OK": lambda *args: KEEP,       # the old spelling of DUNNO
}

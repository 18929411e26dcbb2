"""Runs one restriction list: the plugin pipeline of one SMTP stage.

Postfix's evaluation rules (smtpd_check.c generic_checks, smtpd_check_reject):

* elements run in the order main.cf gives; the first decisive verdict ends
  the list; reaching the end means "no objection" (:data:`DUNNO`, which the
  caller treats as permit);
* ``warn_if_reject`` makes the next element (a whole restriction class if
  it is one) log "reject_warning" instead of rejecting;
* DEFER_IF_REJECT turns a later 5xx of the same list into its 4xx reply;
  DEFER_IF_PERMIT is remembered and applied by the caller when the request
  is finally permitted; once both are raised the list stops;
* an access-table value or a restriction-class name evaluates more
  restrictions in place, at most 100 levels deep;
* after DISCARD nothing more is evaluated for the transaction;
* ``soft_bounce = yes`` turns every 5xx into 4xx, and the first digit of
  the enhanced status code always follows the reply code.

A check that raises or passes its timeout yields a temporary failure
(451 4.3.0), and a lookup that fails Postfix's two replies (smtpd_check.c
reject_dict_retry / reject_server_error): a table that cannot answer now
``451 4.3.0 <name>: Temporary lookup failure``, naming what the list
judges; a table that answered something unusable ``451 4.3.5 Server
configuration error`` — never an accept, never a 5xx, and never turned
into a mere warning. (Access tables answer their own failures, 4.3.5, as
check_table_result does: relayd.checks.access.)
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import gevent

from relayd.config import ConfigError
from relayd.metrics import METER
from relayd.pipeline.context import CheckContext
from relayd.pipeline.registry import CheckRegistry, CheckSpec
from relayd.pipeline.verdicts import (DUNNO, Bcc, Defer, DeferIfPermit, DeferIfReject, Discard,
                                      Filter, Hold, Info, Prepend, Redirect, Reject,
                                      RestrictionList, Verdict, Warn, WarnIfReject,
                                      is_header_line, refusal)
from relayd.smtp.replies import (R451_CONFIG_ERROR, R451_TEMPORARY_FAILURE,
                                 R451_TEMPORARY_LOOKUP_FAILURE, Reply)
from relayd.tables.base import LookupConfigError, TemporaryLookupError

log = logging.getLogger("relayd.smtpd")

#: Postfix's limit on nested restriction classes / access-table results.
MAX_RECURSION = 100

# The access check a bare "type:table" element stands for, per stage (def_acl).
IMPLICIT_ACCESS = {"client": "check_client_access", "helo": "check_helo_access",
                   "sender": "check_sender_access", "relay": "check_recipient_access",
                   "recipient": "check_recipient_access"}

# Actions that need a mail transaction (can_delegate_action / not_in_client_helo).
_TRANSACTION_ACTIONS = (Hold, Discard, Filter, Redirect, Bcc, Prepend)


@dataclass(frozen=True, slots=True)
class Element:
    """One compiled element of a restriction list: a check and its arguments,
    or (``spec`` None) the restriction class called ``name``."""

    spec: CheckSpec | None
    args: tuple[str, ...] = ()
    name: str = ""


def compile_restrictions(parameter: str, words: Sequence[str], registry: CheckRegistry, *,
                         config=None, classes=(), stage: str | None = None) -> tuple[Element, ...]:
    """Turn a restriction list (its words, as the list parameter's value gives
    them) into elements.

    ``classes`` are the smtpd_restriction_classes names; a bare ``type:table``
    stands for the stage's access check (check_sender_access in the sender
    list...). With ``config`` each check's ``setup`` runs (tables are opened
    now). An unknown or reserved name stops startup naming the parameter.
    """
    elements = []
    i = 0
    while i < len(words):
        word = words[i]
        spec = registry.get(word)
        if spec is None and word.lower() in classes:
            elements.append(Element(None, (), word.lower()))
            i += 1
            continue
        if spec is None and ":" in word and stage in IMPLICIT_ACCESS:
            spec = registry.get(IMPLICIT_ACCESS[stage])
            i -= 1  # the word itself is the argument
        if spec is None:
            reason = registry.reserved(word)
            raise ConfigError(f"{word}: {reason}" if reason else f"unknown restriction: {word}",
                              parameter=parameter)
        args = tuple(words[i + 1:i + 1 + spec.nargs])
        if len(args) < spec.nargs:
            raise ConfigError(f"restriction {spec.name} needs {spec.nargs} argument(s)",
                              parameter=parameter)
        if spec.setup is not None and config is not None:
            _setup(spec, args, config, parameter)
        elements.append(Element(spec, args, spec.name))
        i += 1 + spec.nargs
    return tuple(elements)


def _setup(spec: CheckSpec, args: tuple[str, ...], config, parameter: str) -> None:
    try:
        spec.setup(args, config)
    except ConfigError as exc:
        if exc.parameter or exc.file:
            raise
        raise ConfigError(f"{spec.name}: {exc.message}", parameter=parameter) from None


class Run:
    """The state of evaluating one stage: Postfix's SMTPD_STATE fields that
    live for one smtpd_check_* call (warn_if_reject, defer_if_reject,
    recursion) plus what outlives it (defer_if_permit, discard, the message
    actions, the names of the checks that ran), which the caller keeps.

    ``report(kind, text)`` logs a "hold"/"warn"/"reject_warning"... event;
    ``compile_value(words, stage)`` compiles an access-table value;
    ``classes`` maps restriction-class names to their elements.
    """

    def __init__(self, *, classes: dict | None = None, compile_value: Callable | None = None,
                 report: Callable[[str, str], None] | None = None,
                 defer_if_permit: Reply | None = None, discard: bool = False,
                 in_transaction: bool = True, after_data: bool = False,
                 soft_bounce: bool = False):
        self.classes = classes or {}
        self.compile_value = compile_value
        self.report = report or (lambda kind, text: log.info("%s: %s", kind, text))
        self.defer_if_permit = defer_if_permit
        self.defer_if_reject: Reply | None = None
        self.discard = discard
        self.in_transaction = in_transaction
        self.after_data = after_data
        self.soft_bounce = soft_bounce
        self.actions: list[Verdict] = []
        self.ran: set[str] = set()
        self._warn_level = 0
        self._depth = 0

    def evaluate(self, elements: tuple[Element, ...], context: CheckContext) -> Verdict:
        """Run ``elements``: the decisive verdict (Permit, Reject, Defer, Discard) or DUNNO."""
        self._depth += 1
        depth = self._depth
        try:
            if depth > MAX_RECURSION:
                log.warning("restrictions nested more than %d levels deep", MAX_RECURSION)
                return Defer(R451_CONFIG_ERROR)
            for element in elements:
                if self.discard:
                    break
                verdict = self._element(element, context)
                if self._warn_level >= depth and not isinstance(verdict, WarnIfReject):
                    self._warn_level = 0
                if verdict.decisive:
                    return verdict
                if self.defer_if_permit is not None and self.defer_if_reject is not None:
                    break
            return DUNNO
        finally:
            self._depth -= 1
            if self._warn_level > self._depth:
                self._warn_level = 0

    def _element(self, element: Element, context: CheckContext) -> Verdict:
        if element.spec is None:
            return self.evaluate(self.classes[element.name], context)
        self.ran.add(element.spec.name)
        ctx = dataclasses.replace(context, args=element.args) if element.args else context
        verdict, failed = _run_one(element.spec, ctx)
        verdict = self._final(verdict.reply) if failed else self._apply(verdict, ctx, element.spec.name)
        if isinstance(verdict, (Reject, Defer)):
            reply = verdict.reply
            METER.inc("smtpd_restriction_rejects", element.spec.name, str(reply.code), reply.status)
        return verdict

    def _apply(self, verdict: Verdict, ctx: CheckContext, check: str) -> Verdict:
        """What ``verdict`` of ``check`` does to this run; the verdict the list sees."""
        if isinstance(verdict, (Reject, Defer)):
            return self._reject(verdict.reply)
        if isinstance(verdict, WarnIfReject):
            self._warn_level = self._warn_level or self._depth
            return verdict
        if isinstance(verdict, DeferIfPermit):
            if self._warn_level:
                return self._reject(verdict.reply)
            self.defer_if_permit = self.defer_if_permit or verdict.reply
            return DUNNO
        if isinstance(verdict, DeferIfReject):
            self.defer_if_reject = self.defer_if_reject or verdict.reply
            return DUNNO
        if isinstance(verdict, (Warn, Info)):
            self.report("warn" if isinstance(verdict, Warn) else "info", verdict.text)
            return DUNNO
        if isinstance(verdict, _TRANSACTION_ACTIONS):
            return self._message_action(verdict, ctx, check)
        if isinstance(verdict, RestrictionList):
            return self._nested(verdict, ctx)
        return verdict

    def permit_deferred(self) -> Verdict | None:
        """The DEFER_IF_PERMIT refusal to give now that the request would be
        permitted, or None when nothing deferred it."""
        return None if self.defer_if_permit is None else self._final(self.defer_if_permit)

    def _reject(self, reply: Reply) -> Verdict:
        """smtpd_check_reject: warn only, or defer instead, or reject."""
        if self._warn_level:
            self.report("reject_warning", str(_fixed(reply, self.soft_bounce)))
            return DUNNO
        if self.defer_if_reject is not None and reply.is_permanent:
            reply, self.defer_if_reject = self.defer_if_reject, None
        return self._final(reply)

    def _final(self, reply: Reply) -> Verdict:
        return refusal(_fixed(reply, self.soft_bounce))

    def _message_action(self, verdict: Verdict, ctx: CheckContext, check: str) -> Verdict:
        kind = type(verdict).__name__.upper()
        if not self.in_transaction:
            log.warning("%s: with smtpd_delay_reject=no, action %s is always skipped in "
                        "client or helo restrictions", ctx.stage, kind)
            return DUNNO
        if isinstance(verdict, Prepend):
            if not is_header_line(verdict.header):   # from a plugin: tables check their own
                log.warning("%s: PREPEND \"%s\" requires header: text", check, verdict.header)
                return DUNNO
            if self.after_data:
                log.warning("action PREPEND must be used before smtpd_end_of_data_restrictions")
                return DUNNO
        else:
            self.report(kind.lower(), verdict.text)
        self.actions.append(verdict)
        if isinstance(verdict, Discard):
            self.discard = True
            return verdict
        return DUNNO

    def _nested(self, verdict: RestrictionList, ctx: CheckContext) -> Verdict:
        try:
            elements = self.compile_value(verdict.restrictions, verdict.stage)
        except (ConfigError, TypeError) as exc:
            log.warning("access table result %r: %s", " ".join(verdict.restrictions), exc)
            return self._final(R451_CONFIG_ERROR)
        return self.evaluate(elements, dataclasses.replace(ctx, stage=verdict.stage))


def _fixed(reply: Reply, soft_bounce: bool) -> Reply:
    """soft_bounce, then the DSN's class digit made to match the reply code."""
    return reply.with_code(reply.code - 100 if soft_bounce and reply.is_permanent else reply.code)


def lookup_failure_reply(exc: TemporaryLookupError, name: str) -> Reply:
    """Postfix's reply to a failed lookup about *name*: 451 4.3.0 "<name>:
    Temporary lookup failure" when a table cannot answer now (DICT_ERR_RETRY),
    451 4.3.5 "Server configuration error" when it answered something
    unusable (DICT_ERR_CONFIG)."""
    if isinstance(exc, LookupConfigError):
        return R451_CONFIG_ERROR
    return R451_TEMPORARY_LOOKUP_FAILURE.format(name)


def evaluate(elements: tuple[Element, ...], context: CheckContext, run: Run | None = None) -> Verdict:
    """Run ``elements`` against ``context``; the first decisive verdict wins."""
    return (run or Run()).evaluate(elements, context)


def _run_one(spec: CheckSpec, ctx: CheckContext) -> tuple[Verdict, bool]:
    """The check's verdict, and whether it failed (then the verdict is a 451 Defer)."""
    try:
        if spec.timeout is None:
            verdict = spec.func(ctx)
        else:
            with gevent.Timeout(spec.timeout):
                verdict = spec.func(ctx)
    except TemporaryLookupError as exc:
        log.warning("%s: %s lookup error: %s", spec.name, ctx.stage, exc)
        METER.inc("check_failures", spec.name, "lookup")
        return Defer(lookup_failure_reply(exc, ctx.reply_name)), True
    except gevent.Timeout:
        log.warning("%s: timeout after %ss in %s restrictions", spec.name, spec.timeout, ctx.stage)
        METER.inc("check_failures", spec.name, "timeout")
        return Defer(R451_TEMPORARY_FAILURE), True
    except Exception:
        log.exception("%s: check failed in %s restrictions", spec.name, ctx.stage)
        METER.inc("check_failures", spec.name, "error")
        return Defer(R451_TEMPORARY_FAILURE), True
    if not isinstance(verdict, Verdict):
        log.error("%s: returned %r, not a verdict", spec.name, verdict)
        METER.inc("check_failures", spec.name, "error")
        return Defer(R451_TEMPORARY_FAILURE), True
    return verdict, False

"""Runs one restriction list: the plugin pipeline of one SMTP stage.

Postfix's evaluation rules: elements run in the order main.cf gives; the
first decisive verdict ends the list; reaching the end means "no objection"
(:data:`DUNNO`, which the caller treats as permit). A check that raises or
passes its timeout yields a temporary failure (451 4.3.0), and a lookup
table that cannot answer yields 451 4.3.5 — never an accept, never a 5xx.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import gevent

from relayd.config import ConfigError
from relayd.pipeline.context import CheckContext
from relayd.pipeline.registry import CheckRegistry, CheckSpec
from relayd.pipeline.verdicts import DUNNO, Defer, Verdict
from relayd.smtp.replies import R451_CONFIG_ERROR, R451_TEMPORARY_FAILURE
from relayd.tables.base import TemporaryLookupError

log = logging.getLogger("relayd.smtpd")


@dataclass(frozen=True, slots=True)
class Element:
    """One compiled element of a restriction list: a check and its arguments."""

    spec: CheckSpec
    args: tuple[str, ...] = ()


def split_list(text: str) -> list[str]:
    """Postfix list syntax: elements separated by commas and/or whitespace."""
    return text.replace(",", " ").split()


def compile_restrictions(parameter: str, text: str, registry: CheckRegistry) -> tuple[Element, ...]:
    """Turn a restriction list as written in main.cf into elements.

    An unknown name stops startup with an error naming the parameter.
    """
    words = split_list(text)
    elements = []
    i = 0
    while i < len(words):
        spec = registry.get(words[i])
        if spec is None:
            raise ConfigError(f"unknown restriction: {words[i]}", parameter=parameter)
        args = tuple(words[i + 1:i + 1 + spec.nargs])
        if len(args) < spec.nargs:
            raise ConfigError(f"restriction {spec.name} needs {spec.nargs} argument(s)",
                              parameter=parameter)
        elements.append(Element(spec, args))
        i += 1 + spec.nargs
    return tuple(elements)


def evaluate(elements: tuple[Element, ...], context: CheckContext) -> Verdict:
    """Run ``elements`` against ``context``; the first decisive verdict wins."""
    for element in elements:
        ctx = dataclasses.replace(context, args=element.args) if element.args else context
        verdict = _run_one(element.spec, ctx)
        if verdict.decisive:
            return verdict
    return DUNNO


def _run_one(spec: CheckSpec, ctx: CheckContext) -> Verdict:
    try:
        if spec.timeout is None:
            verdict = spec.func(ctx)
        else:
            with gevent.Timeout(spec.timeout):
                verdict = spec.func(ctx)
    except TemporaryLookupError as exc:
        log.warning("%s: %s lookup error: %s", spec.name, ctx.stage, exc)
        return Defer(R451_CONFIG_ERROR)
    except gevent.Timeout:
        log.warning("%s: timeout after %ss in %s restrictions", spec.name, spec.timeout, ctx.stage)
        return Defer(R451_TEMPORARY_FAILURE)
    except Exception:
        log.exception("%s: check failed in %s restrictions", spec.name, ctx.stage)
        return Defer(R451_TEMPORARY_FAILURE)
    if not isinstance(verdict, Verdict):
        log.error("%s: returned %r, not a verdict", spec.name, verdict)
        return Defer(R451_TEMPORARY_FAILURE)
    return verdict

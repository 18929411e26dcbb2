"""Restrictions that change how the others count.

``warn_if_reject`` (the next restriction only logs what it would reject),
``defer_if_permit`` and ``defer_if_reject`` (450 4.7.0 if the request is
finally permitted / rejected), as postconf(5) and smtpd_check.c define them.
"""
from __future__ import annotations

from relayd.checks.names import stage_class, stage_name
from relayd.pipeline.context import CheckContext
from relayd.pipeline.verdicts import WARN_IF_REJECT, DeferIfPermit, DeferIfReject, Verdict
from relayd.smtp.replies import R450_DEFER_IF_PERMIT, R450_DEFER_IF_REJECT


def warn_if_reject(ctx: CheckContext) -> Verdict:
    """warn_if_reject: log "reject_warning" instead of rejecting, for the next element."""
    return WARN_IF_REJECT


def defer_if_permit(ctx: CheckContext) -> Verdict:
    """defer_if_permit: 450 4.7.0 <name>: Class rejected: defer_if_permit requested,
    if the request is permitted in the end."""
    return DeferIfPermit(R450_DEFER_IF_PERMIT.format(stage_name(ctx), stage_class(ctx)))


def defer_if_reject(ctx: CheckContext) -> Verdict:
    """defer_if_reject: a later 5xx of this list becomes 450 4.7.0 <name>: Class
    rejected: defer_if_reject requested."""
    return DeferIfReject(R450_DEFER_IF_REJECT.format(stage_name(ctx), stage_class(ctx)))


def register(registry) -> None:
    """Entry point of the built-in modifier plugin."""
    for func in (warn_if_reject, defer_if_permit, defer_if_reject):
        registry.add(func.__name__, func)

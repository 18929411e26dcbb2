"""What a delivery attempt is asked to do and what came of it, and how each
recipient's outcome is logged (Postfix's src/global/log_adhoc.c format)::

    QID: to=<rcpt>, relay=HOST[IP]:PORT, delay=1.2, delays=0.01/0/0.1/0.05,
         dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)

``delays`` are: before the queue manager / in the queue manager / connection
set-up / transmission, each formatted like Postfix's format_tv() with two
significant digits and at most ``delay_logging_resolution_limit`` (2) decimals.

Every delivery agent records each recipient's outcome with
:func:`record_outcome`, the one place where a bounce is decided: with
``soft_bounce = yes`` (Postfix's bounce_append()) a bounce is kept queued as
a deferral instead, its DSN class turned into 4, and logged
``status=SOFTBOUNCE``; no DSN goes to the sender.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from relayd.metrics import METER
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT, Outcome
from relayd.smtp.replies import with_class

__all__ = ["DeliveryRequest", "RecipientRef", "DeliveryResult", "format_delay", "record_outcome"]

SOFTBOUNCE = "SOFTBOUNCE"   # the log's status for a bounce that soft_bounce kept queued

_MILLION = 1_000_000


@dataclass(frozen=True)
class RecipientRef:
    """One recipient of a delivery request: its index in the queued envelope."""
    index: int
    address: str
    original: str | None = None


@dataclass
class DeliveryRequest:
    """One message to hand to a transport, with its still-pending recipients.

    ``arrival_time`` is when the queue accepted it, ``active_time`` when the
    queue manager took it into the active queue (both for the delays).
    ``content`` is the queued wire form (CRLF, dot-stuffed, no end mark).
    ``soft_bounce``: bounces are kept queued (see :func:`record_outcome`).
    """
    queue_id: str
    sender: str
    recipients: list[RecipientRef]
    content: bytes
    arrival_time: float
    active_time: float
    params: dict = field(default_factory=dict)
    soft_bounce: bool = False


@dataclass
class DeliveryResult:
    """All outcomes (:class:`relayd.queue.outcome.Outcome`) of one delivery
    attempt, by recipient index."""
    outcomes: dict[int, Outcome] = field(default_factory=dict)

    def indexes(self, status: str) -> list[int]:
        """The recipient indexes with this status, in order."""
        return sorted(i for i, o in self.outcomes.items() if o.status == status)


def format_delay(seconds: float, max_decimals: int = 2) -> str:
    """A delay as Postfix's format_tv() prints it: large values rounded to
    whole seconds, small ones with two significant digits (0.0123 -> "0.01",
    1.234 -> "1.2", 12.3 -> "12", 0 -> "0")."""
    micros = max(0, round(seconds * _MILLION))
    if max_decimals == 2 and micros < 995000:
        # The usual delay (under a second, to hundredths), five times per log line.
        hundredths = (micros + 5000) // 10000
        if not hundredths:
            return "0"
        return f"0.{hundredths // 10}" if not hundredths % 10 else f"0.{hundredths:02d}"
    sec, usec = divmod(micros, _MILLION)
    ures, wid = _MILLION // 10 ** max_decimals, 100
    if sec > 0:
        n = 1
        while sec >= n and n <= wid // 10:
            n *= 10
        ures = (_MILLION // wid) * n
    else:
        while usec >= wid * ures:
            ures *= 10
    if ures > 1:
        usec += ures // 2
        if usec >= _MILLION:
            sec, usec = sec + 1, usec - _MILLION
    out = str(sec)
    if usec >= ures:
        digits, rem, n = [], usec, _MILLION // 10
        while rem >= ures and n > 0:
            digits.append(str(rem // n))
            rem %= n
            n //= 10
        out += "." + "".join(digits)
    return out


def record_outcome(logger: logging.Logger, request: DeliveryRequest, result: DeliveryResult,
                   recipient: RecipientRef, outcome: Outcome,
                   times: tuple[float, float, float], *, conn_use: int = 1) -> None:
    """Record ``recipient``'s ``outcome`` in ``result`` and log its line; a
    bounce under ``request.soft_bounce`` is recorded and logged as Postfix's
    bounce_append() does then (see the module doc). ``times`` = (hand-off to
    the transport, connection set up, done); when there was no connection,
    pass the hand-off time as "set up" so the set-up delay is 0, as Postfix does."""
    status = outcome.status
    if status == BOUNCED and request.soft_bounce:
        outcome = dataclasses.replace(outcome, status=DEFERRED, dsn=with_class(outcome.dsn, 4))
        status = SOFTBOUNCE
    result.outcomes[recipient.index] = outcome
    handoff, conn_done, done = times
    line = f"{request.queue_id}: to=<{recipient.address}>"
    if recipient.original and recipient.original.lower() != recipient.address.lower():
        line += f", orig_to=<{recipient.original}>"
    line += f", relay={outcome.relay}"
    if conn_use > 1:
        line += f", conn_use={conn_use}"
    delays = (request.active_time - request.arrival_time, handoff - request.active_time,
              conn_done - handoff, done - conn_done)
    line += (f", delay={format_delay(done - request.arrival_time)}, delays="
             + "/".join(format_delay(d) for d in delays))
    line += f", dsn={outcome.dsn}, status={status} ({outcome.reason})"
    logger.info("%s", line)
    _count(logger.name.rpartition(".")[2], status, outcome.dsn, len(request.content), delays,
           done - handoff)


# postfix_exporter's names of the four delays (its smtp_delivery_delay_seconds stages).
_STAGES = ("before_queue_manager", "queue_manager", "connection_setup", "transmission")


def _count(transport: str, status: str, dsn: str, size: int, delays, took: float) -> None:
    """The metrics of one recipient's outcome; ``transport`` is the program
    that logged it (smtp, local), as Postfix's exporter tells them apart."""
    METER.inc("delivery_recipients", transport, status, dsn)
    METER.inc("delivery_bytes", transport, status, amount=size)
    METER.observe("delivery_duration_seconds", transport, value=took)
    if transport != "smtp":
        return
    METER.inc("smtp_messages_processed", status)
    if status == BOUNCED:
        METER.inc("smtp_bounced_messages_by_dsn", dsn)
    elif status != SENT:
        METER.inc("smtp_deferred_messages_by_dsn", dsn)
        return
    for stage, delay in zip(_STAGES, delays):
        METER.observe("smtp_delivery_delay_seconds", stage, value=delay)

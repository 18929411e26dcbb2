"""access(5) actions: what a value found in an access table means.

:func:`access_verdict` is Postfix's check_table_result (smtpd_check.c): the
value's first word picks the action, the rest is its text. The replies are
``<code> <dsn> <name>: <Class> rejected: <text>`` with the codes of main.cf
(access_map_reject_code, access_map_defer_code), an RFC 3463 code at the
start of the text replacing the default one (then fixed up by
:func:`dsn_fix` to match what is rejected).
"""
from __future__ import annotations

import logging

from relayd.checks.names import RECIPIENT_CLASS, SENDER_CLASS
from relayd.paramtypes import split_list
from relayd.pipeline.verdicts import (DUNNO, OK, Bcc, DeferIfPermit, DeferIfReject, Discard,
                                      Filter, Hold, Info, Prepend, Redirect, RestrictionList,
                                      Verdict, Warn, is_header_line, refusal)
from relayd.smtp.replies import R450_ACCESS_DEFERRED, R554_ACCESS_REJECTED, Reply, split_status
from relayd.tables.base import LookupConfigError

log = logging.getLogger("relayd.smtpd")

# smtpd_dsn_fix.c: X.1.Y address statuses swapped to match what is rejected.
_SENDER_DSN = {"1": "4.1.0", "2": "4.1.8", "3": "4.1.7", "4": "4.1.0", "5": "4.1.0",
               "6": "4.1.0", "7": "4.1.7", "8": "4.1.8"}
_RECIPIENT_DSN = {"1": "4.1.1", "2": "4.1.2", "3": "4.1.3", "4": "4.1.4", "5": "4.1.5",
                  "6": "4.1.6", "7": "4.1.3", "8": "4.1.2"}


def dsn_fix(status: str, reply_class: str) -> str:
    """Postfix's smtpd_dsn_fix: an address status (X.1.Y) is made to fit the
    class being rejected (sender 4.1.8 for a recipient's 4.1.2, ...); other
    statuses stay. The first digit is fixed later to match the reply code."""
    if not status.startswith(("2.1.", "4.1.", "5.1.")):
        return status
    if reply_class == SENDER_CLASS:
        fixed = _SENDER_DSN.get(status[4:], "4.1.0")
    elif reply_class == RECIPIENT_CLASS:
        fixed = _RECIPIENT_DSN.get(status[4:], "4.1.0")
    else:
        fixed = "4.0.0"
    return status[0] + fixed[1:]


def split_dsn(text: str, default: str) -> tuple[str, str]:
    """``"5.1.1 Who?"`` -> ``("5.1.1", "Who?")``; no leading code: the default."""
    status, text = split_status(text)
    return status or default, text


def _refusal(code: int, default_dsn: str, text: str, default_text: str,
             name: str, reply_class: str) -> Reply:
    status, text = split_dsn(text, default_dsn)
    template = R554_ACCESS_REJECTED if code >= 500 else R450_ACCESS_DEFERRED
    return Reply(code, dsn_fix(status, reply_class),
                 template.text.format(name, reply_class, text or default_text))


def access_verdict(value: str, *, name: str, reply_class: str, stage: str, config,
                   table: str = "") -> Verdict:
    """The verdict for ``value``, found in access table ``table`` for ``name``
    (rejected as ``reply_class``; a restriction list in the value is
    evaluated for ``stage``)."""
    command, _, text = value.strip().partition(" ")
    if "\t" in command:
        command, _, more = command.partition("\t")
        text = f"{more} {text}"
    text = text.strip()
    action = command.upper()
    about = f"<{name}>: {reply_class}"
    if action == "DUNNO":
        return DUNNO
    if action in ("OK", "RELAY") or value.isdigit():
        return OK
    if action == "REJECT":
        return refusal(_refusal(config["access_map_reject_code"], "5.7.1", text,
                                 "Access denied", name, reply_class))
    if action == "DEFER":
        return refusal(_refusal(config["access_map_defer_code"], "4.7.1", text,
                                 "Access denied", name, reply_class))
    if action in ("DEFER_IF_PERMIT", "DEFER_IF_REJECT"):
        reply = _refusal(config["access_map_defer_code"], "4.7.1", text,
                         "Service unavailable", name, reply_class)
        return DeferIfPermit(reply) if action == "DEFER_IF_PERMIT" else DeferIfReject(reply)
    if len(command) == 3 and command[0] in "45" and command.isdigit() and text:
        return refusal(_refusal(int(command), command[0] + ".7.1", text, "Access denied",
                                 name, reply_class))
    if action in ("WARN", "INFO"):
        return Warn(text) if action == "WARN" else Info(text)
    if action in ("HOLD", "DISCARD"):
        logged = f"{about} {text or f'triggers {action} action'}"
        return Hold(logged) if action == "HOLD" else Discard(logged)
    special = _target_action(action, text, about, table, value)
    if special is not None:
        return special
    return _restrictions(value, stage, table)


def _target_action(action: str, text: str, about: str, table: str, value: str) -> Verdict | None:
    """FILTER, REDIRECT, BCC and PREPEND; a malformed one is logged and ignored."""
    if action == "FILTER":
        if ":" not in text:
            log.warning("access table %s entry \"%s\" requires transport:destination", table, value)
            return DUNNO
        return Filter(text, f"{about} triggers FILTER {text}")
    if action in ("REDIRECT", "BCC"):
        if "@" not in text:
            log.warning("access table %s entry \"%s\" requires user@domain target", table, value)
            return DUNNO
        cls = Redirect if action == "REDIRECT" else Bcc
        return cls(text, f"{about} triggers {action} {text}")
    if action == "PREPEND":
        if not is_header_line(text):
            log.warning("access table %s entry \"%s\" requires header: text", table, value)
            return DUNNO
        return Prepend(text)
    return None


def _restrictions(value: str, stage: str, table: str) -> Verdict:
    """Any other value is a restriction list (a restriction-class name...)."""
    if ":" in value:
        # Tables must be opened at startup; a value cannot name one (Postfix refuses too).
        raise LookupConfigError(f"access table {table} has entry with lookup table: {value}; "
                                   f"define a restriction class and specify its name instead")
    words = split_list(value)
    if not words:
        log.warning("access table %s entry %s has empty value", table, value)
        return OK
    return RestrictionList(tuple(words), stage)

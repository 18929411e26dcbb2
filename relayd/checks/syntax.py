"""Syntax restrictions on names the client gives, and on its pipelining.

``reject_invalid_helo_hostname``, ``reject_non_fqdn_helo_hostname``,
``reject_non_fqdn_sender``, ``reject_non_fqdn_recipient`` (with Postfix's
older aliases) and ``reject_unauth_pipelining``, worded and coded as
smtpd_check.c words them (invalid_hostname_reject_code 501,
non_fqdn_reject_code 504). Whatever list they are written in, each judges
its own object: a HELO check rejects the HELO name as "Helo command".
"""
from __future__ import annotations

import ipaddress
import re

from relayd.checks.names import HELO_CLASS, RECIPIENT_CLASS, SENDER_CLASS, stage_class, stage_name
from relayd.pipeline.context import CheckContext
from relayd.pipeline.verdicts import DUNNO, Reject, Verdict, refusal
from relayd.smtp.replies import (R501_INVALID_HOSTADDR, R501_INVALID_HOSTNAME,
                                 R503_UNAUTH_PIPELINING, R504_NON_FQDN_ADDRESS,
                                 R504_NON_FQDN_HOSTNAME, Reply)

# valid_hostname.c: letters, digits, "_" and inner "-"; labels up to 63, names up to 255.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def valid_hostname(name: str) -> bool:
    """Postfix's valid_hostname(): dot-separated labels, not all-numeric."""
    if not name or len(name) > 255:
        return False
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return not name.replace(".", "").isdigit()


def valid_mailhost_addr(text: str) -> bool:
    """An address as written inside [brackets]: IPv4, or ``IPv6:`` + address."""
    if text[:5].lower() == "ipv6:":
        text = text[5:]
        family = 6
    else:
        family = 4
    try:
        return ipaddress.ip_address(text).version == family
    except ValueError:
        return False


def _truncated(name: str) -> str:
    """A name ending in one dot, without it (dup_if_truncate)."""
    if len(name) > 1 and name.endswith(".") and not name.endswith(".."):
        return name[:-1]
    return name


def _refuse(template: Reply, code: int, name: str, reply_class: str) -> Verdict:
    reply = Reply(code, template.status, template.text.format(name, reply_class))
    return refusal(reply)


def _bad_hostaddr(ctx: CheckContext, helo: str) -> Verdict:
    inner = helo[1:-1] if len(helo) > 2 and helo.endswith("]") else helo
    if valid_mailhost_addr(inner):
        return DUNNO
    return _refuse(R501_INVALID_HOSTADDR, ctx.config["invalid_hostname_reject_code"],
                   helo, HELO_CLASS)


def reject_invalid_helo_hostname(ctx: CheckContext) -> Verdict:
    """reject_invalid_helo_hostname: 501 5.5.2 <helo>: Helo command rejected: Invalid name."""
    helo = ctx.session.helo_name
    if not helo:
        return DUNNO
    if helo.startswith("["):
        return _bad_hostaddr(ctx, helo)
    name = _truncated(helo)
    if valid_hostname(name) or valid_mailhost_addr(name):
        return DUNNO
    return _refuse(R501_INVALID_HOSTNAME, ctx.config["invalid_hostname_reject_code"],
                   helo, HELO_CLASS)


def reject_non_fqdn_helo_hostname(ctx: CheckContext) -> Verdict:
    """reject_non_fqdn_helo_hostname: 504 5.5.2 <helo>: Helo command rejected:
    need fully-qualified hostname."""
    helo = ctx.session.helo_name
    if not helo:
        return DUNNO
    if helo.startswith("["):
        return _bad_hostaddr(ctx, helo)
    name = _truncated(helo)
    if valid_hostname(name) and "." in name:
        return DUNNO
    return _refuse(R504_NON_FQDN_HOSTNAME, ctx.config["non_fqdn_reject_code"],
                   helo, HELO_CLASS)


def _non_fqdn_address(ctx: CheckContext, address: str, reply_class: str) -> Verdict:
    domain = address.rpartition("@")[2] if "@" in address else ""
    if domain.startswith("[") and domain.endswith("]"):
        return DUNNO
    domain = _truncated(domain)
    if domain and valid_hostname(domain) and "." in domain:
        return DUNNO
    return _refuse(R504_NON_FQDN_ADDRESS, ctx.config["non_fqdn_reject_code"],
                   address, reply_class)


def reject_non_fqdn_sender(ctx: CheckContext) -> Verdict:
    """reject_non_fqdn_sender: 504 5.5.2 <s>: Sender address rejected:
    need fully-qualified address (never for the null sender)."""
    if not ctx.sender:
        return DUNNO
    return _non_fqdn_address(ctx, ctx.sender, SENDER_CLASS)


def reject_non_fqdn_recipient(ctx: CheckContext) -> Verdict:
    """reject_non_fqdn_recipient: 504 5.5.2 <r>: Recipient address rejected:
    need fully-qualified address."""
    if ctx.recipient is None:
        return DUNNO
    return _non_fqdn_address(ctx, ctx.recipient, RECIPIENT_CLASS)


def reject_unauth_pipelining(ctx: CheckContext) -> Verdict:
    """reject_unauth_pipelining: 503 5.5.0 <name>: Class rejected: Improper use
    of SMTP command pipelining, once the driver saw the client talk too early."""
    if not ctx.session.pipelined_early:
        return DUNNO
    return Reject(R503_UNAUTH_PIPELINING.format(stage_name(ctx), stage_class(ctx)))


def register(registry) -> None:
    """Entry point of the built-in syntax-check plugin (with Postfix's old names)."""
    for name, func in (("reject_invalid_helo_hostname", reject_invalid_helo_hostname),
                       ("reject_invalid_hostname", reject_invalid_helo_hostname),
                       ("reject_non_fqdn_helo_hostname", reject_non_fqdn_helo_hostname),
                       ("reject_non_fqdn_hostname", reject_non_fqdn_helo_hostname),
                       ("reject_non_fqdn_sender", reject_non_fqdn_sender),
                       ("reject_non_fqdn_recipient", reject_non_fqdn_recipient),
                       ("reject_unauth_pipelining", reject_unauth_pipelining)):
        registry.add(name, func)

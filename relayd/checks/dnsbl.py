"""DNS block and allow lists: the reject_rbl family (smtpd_check.c).

==============================  =============================================
reject_rbl_client ZONE          the client address, reversed (nibbles for
(reject_rbl)                    IPv6), under ZONE: an A record lists it
reject_rhsbl_client ZONE        the client name (not "unknown") under ZONE
reject_rhsbl_reverse_client Z.  the client's reverse (PTR) name
reject_rhsbl_helo ZONE          the HELO/EHLO name
reject_rhsbl_sender ZONE        the sender's domain (not the null sender)
reject_rhsbl_recipient ZONE     the recipient's domain
permit_dnswl_client ZONE        OK when the client address is listed
permit_rhswl_client ZONE        OK when the client name is listed
reject_maps_rbl                 legacy: reject_rbl_client for each zone of
                                maps_rbl_domains (a warning says so)
==============================  =============================================

``ZONE=d.d.d.d`` lists only when an A record matches the pattern, whose
fields are numbers or ``[...]`` lists of numbers and ``a..b`` ranges
(``zen.example=127.0.0.[2..11]``, ``dul.example=127.0.0.[3;10]``).
A DUL-style or any other address list is just another zone.

A listed client gets ``default_rbl_reply`` (or the template
``rbl_reply_maps`` has for ``ZONE=d.d.d.d``, then for ``ZONE``), expanded
with ``$rbl_code`` (maps_rbl_reject_code), ``$rbl_domain``, ``$rbl_what``,
``$rbl_class``, ``$rbl_reason`` (= ``$rbl_txt``: the zone's TXT records,
joined with " / ", at most 500 characters) and smtpd's names
(``$client_address``, ``$client_name``, ``$helo_name``, ``$sender``,
``$recipient``...); characters other than printable ASCII and tab in the
expanded values become "_" (Postfix's smtpd_expansion_filter). The A
record decides; the TXT record is asked only for a name that is listed.

A lookup without a definitive answer (timeout, SERVFAIL, REFUSED...) is
logged as Postfix logs it (``warning: NAME: RBL lookup error: ...``); the
reject_* checks then do what ``relayd_rbl_tempfail_action`` says: dunno
(Postfix: skip the check), defer_if_permit, or defer (450 4.7.1 ...
Service unavailable). The permit_* checks always answer it as Postfix
does: a DEFER_IF_REJECT ``450 4.7.1 <what>: Client host rejected: Service
unavailable``, then they go on. permit_dnswl_client and
permit_rhswl_client never permit a recipient the relay would not accept
from anyone (Postfix's "don't allowlist unauthorized recipients").

Answers are cached by the resolver for their TTL (relayd.dns); a name whose
lookup failed is not asked again for FAILURE_MEMORY seconds.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from relayd.addresses import split_address
from relayd.checks.actions import dsn_fix
from relayd.checks.names import CLIENT_CLASS, HELO_CLASS, RECIPIENT_CLASS, SENDER_CLASS
from relayd.checks.syntax import valid_hostname
from relayd.config import ConfigError
from relayd.config.derived import PerConfig
from relayd.config.expand import ExpansionError, expand
from relayd.dns import DnsError, DnsTemporaryError, dnsbl_name, resolver
from relayd.domains import AddressClasses
from relayd.metrics import METER
from relayd.pipeline.context import CheckContext
from relayd.pipeline.verdicts import (DUNNO, OK, Defer, DeferIfPermit, DeferIfReject, Verdict,
                                      refusal)
from relayd.rewrite.tables import open_tables
from relayd.smtp.replies import (R450_ACCESS_DEFERRED, R450_DEFER, R451_CONFIG_ERROR, Reply,
                                 split_status)
from relayd.tables.base import TemporaryLookupError
from relayd.tables.maps import Maps

log = logging.getLogger("relayd.smtpd")

REVERSE_CLIENT_CLASS = "Unverified Client host"
#: Longest reason kept from a list's TXT records (smtpd_check.c RBL_TXT_LIMIT).
TXT_LIMIT = 500
#: The longest a check waits for the resolver: several queries, each bounded by
#: relayd_dns_timeout x relayd_dns_attempts x servers (the resolver enforces that).
CHECK_TIMEOUT = 60.0
#: How long a name whose lookup failed is answered "no answer" without asking
#: again (seconds), and how many such names are kept.
FAILURE_MEMORY, FAILURES_KEPT = 30.0, 1000

_SOFT = object()   # the lookup gave no definitive answer
_OCTET = re.compile(r"\d{1,3}")
_FIELD = re.compile(r"\[[^\[\]]*\]|[^.\[\]]*")
# smtpd_expansion_filter's default: tab and printable ASCII.
_UNFILTERED = re.compile(r"[^\t\x20-\x7e]")


@dataclass(frozen=True, slots=True)
class Listed:
    """A name a list has: its A records and the reason from its TXT records."""

    addresses: tuple[str, ...]
    reason: str


class AddressPattern:
    """The ``d.d.d.d`` after ``ZONE=``: each field a number or a ``[...]`` of
    numbers and ``a..b`` ranges separated by ``;`` (Postfix's ip_match)."""

    def __init__(self, text: str):
        fields = _fields(text)
        if len(fields) != 4:
            raise ValueError(f"bad address pattern {text!r}: need 4 fields")
        self.fields = tuple(_field(f, text) for f in fields)

    def matches(self, address: str) -> bool:
        octets = address.split(".")
        return len(octets) == 4 and all(
            o.isdigit() and any(lo <= int(o) <= hi for lo, hi in ranges)
            for o, ranges in zip(octets, self.fields))


def _fields(text: str) -> list[str]:
    """The dot-separated fields of a pattern; a ``[...]`` field may hold dots."""
    fields, i = [], 0
    while True:
        match = _FIELD.match(text, i)
        fields.append(match.group())
        i = match.end()
        if i == len(text):
            return fields
        if text[i] != ".":
            raise ValueError(f"bad address pattern {text!r}")
        i += 1


def _field(field: str, text: str) -> tuple[tuple[int, int], ...]:
    inner = field[1:-1] if field.startswith("[") and field.endswith("]") else None
    items = inner.replace(",", ";").split(";") if inner is not None else [field]
    ranges = []
    for item in items:
        lo, dots, hi = item.partition("..")
        if not _OCTET.fullmatch(lo) or (dots and not _OCTET.fullmatch(hi)) \
                or (dots and inner is None):
            raise ValueError(f"bad address pattern {text!r}")
        low, high = int(lo), int(hi) if dots else int(lo)
        if high > 255 or low > high:
            raise ValueError(f"bad address pattern {text!r}: {item} is no octet range")
        ranges.append((low, high))
    return tuple(ranges)


class DnsLists(PerConfig):
    """What the list checks of one configuration share: the resolver, the
    rbl_reply_maps tables, the parsed ``ZONE=pattern`` arguments."""

    def __init__(self, config):
        self.config = config
        self.resolver = resolver(config)
        self.reply_maps = Maps("rbl_reply_maps", open_tables(config, "rbl_reply_maps"))
        self.tempfail = config["relayd_rbl_tempfail_action"]
        self.template = config.raw("default_rbl_reply")
        self._zones: dict[str, tuple[str, AddressPattern | None]] = {}
        self._failed: dict[str, float] = {}   # query -> until when it is not asked again

    def zone(self, arg: str) -> tuple[str, AddressPattern | None]:
        """``ZONE[=pattern]`` as (zone, pattern); ValueError when it is bad."""
        found = self._zones.get(arg)
        if found is None:
            zone, eq, pattern = arg.partition("=")
            zone = zone.strip(".").lower()
            if not valid_hostname(zone):
                raise ValueError(f"bad DNS list domain {arg!r}")
            found = self._zones[arg] = (zone, AddressPattern(pattern) if eq else None)
        return found

    def find(self, arg: str, *, address: str = "", domain: str = ""):
        """rbl_pagein for ``address`` (reversed) or ``domain`` under ``ZONE``:
        a :class:`Listed` when the name has an A record (matching the pattern),
        None when it has none, _SOFT when there was no definitive answer."""
        zone, pattern = self.zone(arg)
        try:
            query = dnsbl_name(address, zone) if address else f"{domain}.{zone}"
        except ValueError:
            return None   # not an IP address: nothing to ask
        if self._failed.get(query, 0.0) > time.monotonic():
            METER.inc("rbl_lookups", zone, "error")
            return _SOFT
        try:
            answer = self.resolver.lookup(query, "A")
        except DnsError as exc:
            self._failure(query, exc)
            METER.inc("rbl_lookups", zone, "error")
            return _SOFT
        if not answer or (pattern and not any(map(pattern.matches, answer.records))):
            METER.inc("rbl_lookups", zone, "unlisted")
            return None
        METER.inc("rbl_lookups", zone, "listed")
        try:
            reason = " / ".join(self.resolver.lookup(query, "TXT").records)[:TXT_LIMIT]
        except DnsError:
            reason = ""
        return Listed(answer.records, reason)


    def _failure(self, query: str, exc: DnsError) -> None:
        """Log Postfix's warning; remember the failure for FAILURE_MEMORY seconds
        (Postfix's smtpd caches it for the life of the process), so that a list
        that does not answer costs one wait, not one per RCPT and session."""
        why = "Host not found, try again" if isinstance(exc, DnsTemporaryError) \
            else "Non-recoverable error"
        log.warning("%s: RBL lookup error: Host or domain name not found. Name service "
                    "error for name=%s type=A: %s", query, query, why)
        if len(self._failed) >= FAILURES_KEPT:
            self._failed.pop(next(iter(self._failed)))
        self._failed[query] = time.monotonic() + FAILURE_MEMORY


def setup_list(args: tuple[str, ...], config) -> None:
    """Setup of every list check: the resolver, the reply maps and the argument."""
    lists = DnsLists.of(config)
    try:
        lists.zone(args[0])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        expand(lists.template, lambda name, stack: "")
    except ExpansionError as exc:
        raise ConfigError(f"bad default rbl reply template: {exc}",
                          parameter="default_rbl_reply") from None


# -- what a listing does ---------------------------------------------------------------


def _rejected(ctx: CheckContext, listed, arg: str, what: str, reply_class: str) -> Verdict:
    """reject_rbl_addr / reject_rbl_domain on a find() result."""
    if listed is None:
        return DUNNO
    if listed is _SOFT:
        return _tempfail(ctx, what, reply_class)
    return _reply(ctx, listed, arg, what, reply_class)


def _tempfail(ctx: CheckContext, what: str, reply_class: str) -> Verdict:
    action = DnsLists.of(ctx.config).tempfail
    if action == "dunno":
        return DUNNO
    reply = R450_ACCESS_DEFERRED.format(what, reply_class, "Service unavailable")
    return Defer(reply) if action == "defer" else DeferIfPermit(reply)


def _reply(ctx: CheckContext, listed: Listed, arg: str, what: str, reply_class: str) -> Verdict:
    """rbl_reject_reply: the template for ``arg``, expanded, as a refusal."""
    lists = DnsLists.of(ctx.config)
    domain = arg.partition("=")[0]
    try:
        template = lists.reply_maps.find(arg)
        if template is None and domain != arg:
            template = lists.reply_maps.find(domain)
    except TemporaryLookupError:
        return Defer(R451_CONFIG_ERROR)
    values = _expansion_values(ctx, listed, domain, what, reply_class)
    text = None
    if template is not None:
        try:
            text = _expand(template, values)
        except ExpansionError:
            log.warning("rbl_reject_reply: bad rbl reply template for domain %s: %s",
                        arg, template)
    if text is None:
        text = _expand(lists.template, values)
    code = text[:3]
    if not (code[:1] in ("4", "5") and code.isdigit() and text[3:4] == " "):
        log.warning("rbl response code configuration error: %s", text)
        return Defer(R450_DEFER.format("Service unavailable"))
    status, rest = split_status(text[4:])
    return refusal(Reply(int(code), dsn_fix(status or "4.7.1", reply_class),
                         rest or "Service unavailable").with_code(int(code)))


def _expand(template: str, values: dict[str, str]) -> str:
    return expand(template, lambda name, stack: values.get(name))


def _expansion_values(ctx: CheckContext, listed: Listed, domain: str, what: str,
                      reply_class: str) -> dict[str, str]:
    """rbl_expand_lookup and smtpd_expand_lookup's names, filtered."""
    s = ctx.session
    values = {
        "rbl_code": f"{ctx.config['maps_rbl_reject_code']}", "rbl_domain": domain,
        "rbl_reason": listed.reason, "rbl_txt": listed.reason, "rbl_what": what,
        "rbl_class": reply_class, "server_name": ctx.config["myhostname"],
        "client": f"{s.client_name}[{s.client_addr}]", "client_address": s.client_addr,
        "client_name": s.client_name, "client_port": str(s.client_port),
        "reverse_client_name": _reverse_name(ctx), "helo_name": s.helo_name,
    }
    for attr, address in (("sender", ctx.sender), ("recipient", ctx.recipient)):
        if address is not None:
            localpart, domain_part = split_address(address)
            values.update({attr: address, f"{attr}_name": localpart,
                           f"{attr}_domain": domain_part})
    return {name: _UNFILTERED.sub("_", value) for name, value in values.items()}


def _reverse_name(ctx: CheckContext) -> str:
    # The unverified PTR name (SessionView.reverse_client_name, set by the
    # client-name lookup); a view built without it has only the client name.
    return ctx.session.reverse_client_name or ctx.session.client_name


def _list_domain(what: str) -> str | None:
    """find_dnsxl_domain: the domain asked about, or None to skip the lookup."""
    domain = split_address(what)[1] if "@" in what else what
    if not domain or domain.startswith("["):
        return None
    if domain.rpartition(".")[2].isdigit():
        return None   # Spamhaus refuses names ending in a number: Postfix skips them
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return domain.lower() if valid_hostname(domain) else None


# -- the checks --------------------------------------------------------------------------


def reject_rbl_client(ctx: CheckContext) -> Verdict:
    """reject_rbl_client ZONE[=d.d.d.d]: the client address is listed."""
    return _rbl_addr(ctx, ctx.args[0])


def _rbl_addr(ctx: CheckContext, arg: str) -> Verdict:
    addr = ctx.session.client_addr
    listed = DnsLists.of(ctx.config).find(arg, address=addr)
    return _rejected(ctx, listed, arg, addr, CLIENT_CLASS)


def _rhsbl(ctx: CheckContext, what: str | None, reply_class: str) -> Verdict:
    if not what:
        return DUNNO
    domain = _list_domain(what)
    if domain is None:
        return DUNNO
    arg = ctx.args[0]
    return _rejected(ctx, DnsLists.of(ctx.config).find(arg, domain=domain), arg, what,
                     reply_class)


def reject_rhsbl_client(ctx: CheckContext) -> Verdict:
    """reject_rhsbl_client ZONE: the client's (verified) name is listed."""
    name = ctx.session.client_name
    return _rhsbl(ctx, None if name == "unknown" else name, CLIENT_CLASS)


def reject_rhsbl_reverse_client(ctx: CheckContext) -> Verdict:
    """reject_rhsbl_reverse_client ZONE: the client's PTR name is listed."""
    name = _reverse_name(ctx)
    return _rhsbl(ctx, None if name == "unknown" else name, REVERSE_CLIENT_CLASS)


def reject_rhsbl_helo(ctx: CheckContext) -> Verdict:
    """reject_rhsbl_helo ZONE: the HELO/EHLO name is listed."""
    return _rhsbl(ctx, ctx.session.helo_name, HELO_CLASS)


def reject_rhsbl_sender(ctx: CheckContext) -> Verdict:
    """reject_rhsbl_sender ZONE: the sender's domain is listed."""
    return _rhsbl(ctx, ctx.sender, SENDER_CLASS)


def reject_rhsbl_recipient(ctx: CheckContext) -> Verdict:
    """reject_rhsbl_recipient ZONE: the recipient's domain is listed."""
    return _rhsbl(ctx, ctx.recipient, RECIPIENT_CLASS)


def _allowlisted(ctx: CheckContext, what: str, *, address: str = "",
                 domain: str | None = "") -> Verdict:
    """permit_dnswl_addr / permit_dnswl_domain."""
    if not (address or domain):
        return DUNNO
    if ctx.recipient is not None and ctx.stage not in ("data", "end_of_data") and \
            not AddressClasses.of(ctx.config).authorised(ctx.recipient):
        return DUNNO   # never allowlist a recipient nobody may relay to
    listed = DnsLists.of(ctx.config).find(ctx.args[0], address=address, domain=domain or "")
    if listed is _SOFT:
        return DeferIfReject(R450_ACCESS_DEFERRED.format(what, CLIENT_CLASS,
                                                         "Service unavailable"))
    return DUNNO if listed is None else OK


def permit_dnswl_client(ctx: CheckContext) -> Verdict:
    """permit_dnswl_client ZONE[=d.d.d.d]: OK when the client address is listed."""
    addr = ctx.session.client_addr
    return _allowlisted(ctx, addr, address=addr)


def permit_rhswl_client(ctx: CheckContext) -> Verdict:
    """permit_rhswl_client ZONE[=d.d.d.d]: OK when the client name is listed."""
    name = ctx.session.client_name
    if name == "unknown":
        return DUNNO
    return _allowlisted(ctx, name, domain=_list_domain(name))


def reject_maps_rbl(ctx: CheckContext) -> Verdict:
    """reject_maps_rbl (legacy): reject_rbl_client for each of maps_rbl_domains."""
    for zone in ctx.config["maps_rbl_domains"]:
        verdict = _rbl_addr(ctx, zone)
        if verdict is not DUNNO:
            return verdict
    return DUNNO


def setup_maps_rbl(args: tuple[str, ...], config) -> None:
    """reject_maps_rbl's setup: Postfix 2's warning, and every zone checked."""
    log.warning('support for restriction "reject_maps_rbl" will be removed from %s; '
                'use "reject_rbl_client domain-name" instead', config["mail_name"])
    for zone in config["maps_rbl_domains"]:
        setup_list((zone,), config)


def register(registry) -> None:
    """Entry point of the built-in DNS list plugin."""
    for func in (reject_rbl_client, reject_rhsbl_client, reject_rhsbl_reverse_client,
                 reject_rhsbl_helo, reject_rhsbl_sender, reject_rhsbl_recipient,
                 permit_dnswl_client, permit_rhswl_client):
        registry.add(func.__name__, func, nargs=1, timeout=CHECK_TIMEOUT, setup=setup_list)
    registry.add("reject_rbl", reject_rbl_client, nargs=1, timeout=CHECK_TIMEOUT,
                 setup=setup_list)
    registry.add("reject_maps_rbl", reject_maps_rbl, timeout=CHECK_TIMEOUT,
                 setup=setup_maps_rbl)

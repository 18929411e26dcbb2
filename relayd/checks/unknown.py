"""The reject_unknown_* restrictions: names that DNS does not know.

As smtpd_check.c has them, with its replies and codes:

``reject_unknown_client_hostname`` (``reject_unknown_client``)
    the client has no verified name (relayd.edge.peername):
    ``unknown_client_reject_code`` (450) 4.7.25 "Client host rejected:
    cannot find your hostname, [addr]"; always 450 when a lookup failed
    temporarily. It defers at once, never "if permitted": what a later
    name-based allow-list would do depends on the name.
``reject_unknown_reverse_client_hostname``
    the client address has no PTR name: the same codes, 4.7.1 "... cannot
    find your reverse hostname, [addr]".
``reject_unknown_helo_hostname`` (``reject_unknown_hostname``)
    the HELO name has no A, AAAA or MX record (a null MX counts as one:
    MTAs may have one): ``unknown_hostname_reject_code`` (450) 4.7.1
    "<helo>: Helo command rejected: Host not found"; an address literal is
    checked as reject_invalid_helo_hostname checks it.
``reject_unknown_sender_domain`` (``reject_unknown_address``), ``reject_unknown_recipient_domain``
    the address's domain, unless this host is its final destination (local,
    virtual alias or virtual mailbox class) or it is an address literal,
    has no MX, A or AAAA record: ``unknown_address_reject_code`` (450)
    4.1.8 (sender) / 4.1.2 (recipient) "Domain not found"; a null MX (RFC
    7505) is 550 5.7.27 (sender) / 556 5.1.10 (recipient) "Domain D does
    not accept mail (nullMX)".

An MX record set whose hosts are all malformed names answers "Malformed DNS
server reply" with the same codes. When DNS cannot answer (a timeout,
SERVFAIL, a refusal: relayd.dns.DnsError), the HELO and address checks
follow ``unknown_helo_hostname_tempfail_action`` / ``unknown_address_tempfail_action``
(``$reject_tempfail_action``, default ``defer_if_permit``: 450 with the
"not found" text, only if the request would otherwise be accepted; ``defer``:
at once): never a 5xx on a failed lookup.

The record types are asked one after the other, as Postfix's dns_lookup_l
does, until one answers; relayd stops early on NXDOMAIN (no such name has
records of any type), which Postfix's source marks as to do.
"""
from __future__ import annotations

from relayd.checks.syntax import reject_invalid_helo_hostname, valid_hostname
from relayd.dns import NXDOMAIN, DnsError, resolver
from relayd.domains import LOCAL, VIRTUAL_ALIAS, VIRTUAL_MAILBOX, AddressClasses
from relayd.pipeline.context import NAME_OK, NAME_PERM, CheckContext
from relayd.pipeline.verdicts import DUNNO, Defer, DeferIfPermit, Reject, Verdict, refusal
from relayd.smtp.replies import (R450_HELO_MALFORMED_DNS, R450_HELO_NOT_FOUND,
                                 R450_RECIPIENT_DOMAIN_NOT_FOUND, R450_RECIPIENT_MALFORMED_DNS,
                                 R450_SENDER_DOMAIN_NOT_FOUND, R450_SENDER_MALFORMED_DNS,
                                 R450_UNKNOWN_CLIENT, R450_UNKNOWN_REVERSE_CLIENT,
                                 R550_SENDER_NULL_MX, R556_RECIPIENT_NULL_MX, Reply)
from relayd.tables.search import is_host_address

#: The longest one check may wait on DNS (seconds): three questions, each
#: bounded by the resolver's own timeout and attempts; past it the
#: dispatcher answers 451 4.3.0.
DNS_CHECK_TIMEOUT = 60.0

# Postfix's dns_lookup results (dns.h), a larger number being a better answer.
OK, RETRY, INVAL, NULLMX, NOTFOUND = 0, -2, -3, -5, -7

# The classes of which this host is the final destination (RESOLVE_CLASS_FINAL).
_FINAL = (LOCAL, VIRTUAL_ALIAS, VIRTUAL_MAILBOX)


def reject_unknown_client_hostname(ctx: CheckContext) -> Verdict:
    """reject_unknown_client_hostname: no verified client name."""
    status = ctx.session.client_name_status
    if status == NAME_OK:
        return DUNNO
    code = ctx.config["unknown_client_reject_code"] if status >= NAME_PERM else 450
    return refusal(R450_UNKNOWN_CLIENT.format(ctx.session.client_addr).with_code(code))


def reject_unknown_reverse_client_hostname(ctx: CheckContext) -> Verdict:
    """reject_unknown_reverse_client_hostname: no PTR name for the client address."""
    status = ctx.session.reverse_client_name_status
    if status == NAME_OK:
        return DUNNO
    code = ctx.config["unknown_client_reject_code"] if status == NAME_PERM else 450
    return refusal(R450_UNKNOWN_REVERSE_CLIENT.format(ctx.session.client_addr).with_code(code))


def reject_unknown_helo_hostname(ctx: CheckContext) -> Verdict:
    """reject_unknown_helo_hostname: the HELO name has no A, AAAA or MX record."""
    helo = ctx.session.helo_name
    if not helo:
        return DUNNO
    if helo.startswith("["):
        return reject_invalid_helo_hostname(ctx)
    status = dns_status(ctx.config, helo, ("A", "AAAA", "MX"), stop=(OK,))
    if status in (OK, NULLMX):
        return DUNNO
    if status == RETRY:
        return _tempfail(ctx.config["unknown_helo_hostname_tempfail_action"],
                         R450_HELO_NOT_FOUND.format(helo))
    reply = R450_HELO_MALFORMED_DNS if status == INVAL else R450_HELO_NOT_FOUND
    return refusal(reply.format(helo).with_code(ctx.config["unknown_hostname_reject_code"]))


def reject_unknown_sender_domain(ctx: CheckContext) -> Verdict:
    """reject_unknown_sender_domain: MAIL FROM's domain has no MX, A or AAAA record."""
    if not ctx.sender:
        return DUNNO
    return _unknown_address(ctx, ctx.sender, R450_SENDER_DOMAIN_NOT_FOUND,
                            R450_SENDER_MALFORMED_DNS, R550_SENDER_NULL_MX)


def reject_unknown_recipient_domain(ctx: CheckContext) -> Verdict:
    """reject_unknown_recipient_domain: RCPT TO's domain has no MX, A or AAAA record."""
    if not ctx.recipient:
        return DUNNO
    return _unknown_address(ctx, ctx.recipient, R450_RECIPIENT_DOMAIN_NOT_FOUND,
                            R450_RECIPIENT_MALFORMED_DNS, R556_RECIPIENT_NULL_MX)


def _unknown_address(ctx: CheckContext, address: str, not_found: Reply, malformed: Reply,
                     null_mx: Reply) -> Verdict:
    """smtpd_check.c reject_unknown_address and reject_unknown_mailhost."""
    classes = AddressClasses.of(ctx.config)
    domain = classes.resolve(address).domain
    if not domain or domain.startswith("[") or classes.classify(domain) in _FINAL:
        return DUNNO
    domain = _ascii(domain)
    status = dns_status(ctx.config, domain, ("MX", "A", "AAAA"), stop=(OK, INVAL, NULLMX))
    if status == OK:
        return DUNNO
    if status == NULLMX:
        return Reject(null_mx.format(address, domain))
    if status == RETRY:
        return _tempfail(ctx.config["unknown_address_tempfail_action"], not_found.format(address))
    reply = malformed if status == INVAL else not_found
    return refusal(reply.format(address).with_code(ctx.config["unknown_address_reject_code"]))


def _tempfail(action: str, reply: Reply) -> Verdict:
    """A reject-type restriction whose lookup failed temporarily (DEFER_IF_PERMIT2)."""
    return DeferIfPermit(reply) if action == "defer_if_permit" else Defer(reply)


def _ascii(domain: str) -> str:
    """An internationalised domain in its A-label form (what DNS is asked); a
    domain that has none stays as it is, and DNS cannot know it."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def dns_status(config, name: str, rdtypes: tuple[str, ...], *, stop: tuple[int, ...]) -> int:
    """Postfix's dns_lookup_l(): ask for each record type in turn until one
    gives a status in ``stop``; otherwise the best status seen. A name that
    cannot be a host name is NOTFOUND without a question."""
    if not valid_hostname(name):
        return NOTFOUND
    dns = resolver(config)
    best = NOTFOUND
    for rdtype in rdtypes:
        try:
            answer = dns.lookup(name, rdtype)
        except DnsError:
            status = RETRY
        else:
            status = _status(answer)
        if status in stop:
            return status
        best = max(best, status)
        if status == NOTFOUND and answer.status == NXDOMAIN:
            break
    return best


def _status(answer) -> int:
    if not answer:
        return NOTFOUND
    if answer.rdtype != "MX":
        return OK
    hosts = [host for _, host in answer.records]
    if "" in hosts:   # a null MX (RFC 7505); Postfix takes any "." exchange as one
        return NULLMX
    if any(valid_hostname(host) or is_host_address(host) for host in hosts):
        return OK
    return INVAL



def _setup_resolver(args: tuple[str, ...], config) -> None:
    """A bad relayd_dns_servers stops startup, not the first query."""
    resolver(config)


def register(registry) -> None:
    """Entry point of the built-in reject_unknown_* plugin (with Postfix's old names)."""
    for name, func in (("reject_unknown_client_hostname", reject_unknown_client_hostname),
                       ("reject_unknown_client", reject_unknown_client_hostname),
                       ("reject_unknown_reverse_client_hostname",
                        reject_unknown_reverse_client_hostname)):
        registry.add(name, func)
    for name, func in (("reject_unknown_helo_hostname", reject_unknown_helo_hostname),
                       ("reject_unknown_hostname", reject_unknown_helo_hostname),
                       ("reject_unknown_sender_domain", reject_unknown_sender_domain),
                       ("reject_unknown_address", reject_unknown_sender_domain),
                       ("reject_unknown_recipient_domain", reject_unknown_recipient_domain)):
        registry.add(name, func, timeout=DNS_CHECK_TIMEOUT, setup=_setup_resolver)

"""The SMTP delivery agent: Postfix's smtp(8) for one next hop.

Per message: a connection (a cached one for the same next hop, or a new one:
connect, greeting, EHLO or HELO after a 5xx to EHLO), then ONE transaction
with all pending recipients.

Servers (smtp_connect.c). The next hop's servers come from
:mod:`relayd.delivery.mx` (its MX hosts, or the host itself when
bracketed). They are tried in order: a server that cannot be reached, or
whose greeting, EHLO or TLS handshake fails, or that answers a recipient
with a temporary failure, passes the recipients it did not take to the
next server, with an info line (``QID: host X[IP] said: 451 ...``, or
``connect to X[IP]:PORT: Connection refused``), at most
smtp_mx_address_limit addresses and smtp_mx_session_limit sessions per
next hop. Then smtp_fallback_relay's next hops get what is left, unless
this host is an MX host of the destination. What the last server tried
says is final (a 5xx from any server is final at once). A relayhost or
fallback relay that does not resolve, or where mail loops, defers (4.3.5
"relayhost configuration problem") rather than bounce. With PIPELINING offered, MAIL FROM, every RCPT
TO and DATA go out in one write and their replies are read afterwards. The
queued content is already in wire form; it is sent as is plus ".\\r\\n",
lines longer than smtp_line_length_limit broken by CRLF SPACE.

Each recipient ends up SENT, DEFERRED (4xx reply, connection trouble,
timeout) or BOUNCED (5xx reply, per recipient where the 5xx was per
recipient), and is logged on ``relayd.smtp`` in Postfix's format.
A connection whose transaction ended cleanly returns to the cache; after a
refused transaction it is reset with RSET first.

The session set-up (STARTTLS per the next hop's TLS policy, AUTH) is
:mod:`relayd.delivery.setup`. The cache key is the next hop, plus the SASL
user when there is one: a connection authenticated for one sender's
credentials never carries another sender's mail. At level may a failed
TLS handshake is retried in plaintext, as Postfix does, only when the
message has waited in the queue at least minimal_backoff_time and no SASL
credentials are configured for the next hop; otherwise the mail is deferred
("Cannot start TLS: handshake failure").
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Mapping

from relayd.cleanup.headers import rewrite_generic_headers
from relayd.config import ConfigError
from relayd.delivery.connection import ConnectionCache, SmtpConnection, Trouble, connect
from relayd.delivery.mx import Server, ServerFinder, numeric_address
from relayd.delivery.route import Destination, parse_nexthop
from relayd.delivery.sasl import Credentials, SaslClient
from relayd.delivery.setup import SessionSetup, reply_outcome
from relayd.delivery.tlspolicy import PolicyProblem, TLSPolicies, TLSPolicy
from relayd.delivery.status import DeliveryRequest, DeliveryResult, RecipientRef, record_outcome
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT, Outcome
from relayd.rewrite.generic import GenericMaps
from relayd.smtp.replies import Reply
from relayd.tables.base import TemporaryLookupError
from relayd.tls.client import ClientTLS, HandshakeFailed

__all__ = ["SmtpDeliveryAgent"]

log = logging.getLogger("relayd.smtp")


class SmtpDeliveryAgent:
    """Delivers queued messages over SMTP, reusing connections per next hop."""

    def __init__(self, config: Mapping, *, clock: Callable[[], float] = time.time,
                 cache: ConnectionCache | None = None) -> None:
        self._config, self._clock = config, clock
        self.cache = cache or ConnectionCache(self._config["smtp_connection_cache_time_limit"],
                                              self._config["smtp_connection_reuse_time_limit"])
        self.generic = GenericMaps(config)
        self.policies = TLSPolicies(config)
        self.sasl = SaslClient(config)
        self.setup = SessionSetup(config, ClientTLS(config), self.sasl)
        self.finder = ServerFinder(config)
        self.fallback = _fallback_relays(config)
        self._relayhost = config["relayhost"].strip()
        self._address_limit = config["smtp_mx_address_limit"]
        self._session_limit = config["smtp_mx_session_limit"]

    def deliver(self, destination: Destination, request: DeliveryRequest) -> DeliveryResult:
        """One delivery attempt of ``request`` to ``destination`` (then to
        smtp_fallback_relay while recipients are left with a temporary
        failure); logs one line per recipient and returns every outcome."""
        walk = _Walk(request, self._clock())
        try:
            walk.request = self._generic_headers(request)
            sites = (destination, *self.fallback) if self.fallback else (destination,)
            for number, site in enumerate(sites):
                final = self._site(site, walk, destination.nexthop, first=number == 0,
                                   last=number == len(sites) - 1)
                if final or not walk.left:
                    break
            # A next hop that does not resolve, refuses or loops is a configuration
            # problem when the admin named it: deferred (4.3.5), never bounced.
            walk.named = ("smtp_fallback_relay" if number > 0 else
                          "relayhost" if destination.nexthop == self._relayhost else "")
        except Trouble as trouble:
            walk.why = trouble.outcome
        walk.finish(log, self._clock())
        return walk.result

    def _generic_headers(self, request: DeliveryRequest) -> DeliveryRequest:
        """``request`` with smtp_generic_maps applied to its header addresses
        (before connecting: a table that cannot answer defers the message)."""
        try:
            content = rewrite_generic_headers(request.content, self.generic)
        except TemporaryLookupError as exc:
            log.warning("%s: %s map lookup problem -- deferring delivery: %s",
                        request.queue_id, self.generic.maps.parameter, exc)
            raise Trouble("4.3.0", f"{self.generic.maps.parameter} map lookup problem") from None
        return request if content is request.content else dataclasses.replace(request, content=content)

    def close(self) -> None:
        """Close every cached connection."""
        self.cache.close()

    # --- the servers of one next hop (smtp_connect.c) -------------------------------
    def _site(self, site: Destination, walk: "_Walk", nexthop: str, *, first: bool,
              last: bool) -> bool:
        """Deliver what ``walk`` has left to the servers of next hop ``site``
        (``nexthop``: the delivery's own, the connection cache's key); True
        when no later next hop (fallback relay) may be tried."""
        creds = self.sasl.credentials(walk.request.sender, site, walk.request.queue_id)
        policy = self._policy(site)
        cache_key = nexthop if creds is None else f"{nexthop}\0{creds.user}"
        used = None
        if first and (conn := self.cache.take(cache_key)) is not None:
            # One address and no other next hop: this session decides.
            alone = last and numeric_address(site.host) is not None
            self._session(conn, walk, cache_key, final=alone)
            if alone or not walk.left:
                return True
            used = conn.relay
        found = self.finder.servers(site)
        final_site = last or found.final
        servers = [s for s in found.servers if used is None or _relay(s) != used]
        if not servers:
            walk.why = found.failure or walk.why
            return final_site
        sessions = 0
        for count, server in enumerate(servers, 1):
            last_server = count == len(servers) or count == self._address_limit
            try:
                conn = self._open(server, site, policy, creds, walk.request)
            except Trouble as trouble:
                if trouble.outcome.relay == "none":   # no connection: smtp_connect_addr()
                    log.info("%s", trouble.reason)
                    walk.why = trouble.outcome
                else:
                    walk.fail(log, trouble.outcome, final_site and last_server)
            else:
                sessions += 1
                last_server = last_server or sessions == self._session_limit
                self._session(conn, walk, cache_key, final=final_site and last_server)
            if last_server or not walk.left:
                break
        return final_site

    def _policy(self, site: Destination) -> TLSPolicy:
        try:
            policy = self.policies.policy(site)
        except PolicyProblem:
            raise Trouble("4.7.5", "client TLS configuration problem") from None
        if self.setup.wrapper and not policy.required:
            log.warning('smtp_tls_wrappermode requires "smtp_tls_security_level = encrypt" '
                        '(or stronger)')
            raise Trouble("4.7.5", "client TLS configuration problem")
        return policy

    def _session(self, conn: SmtpConnection, walk: "_Walk", cache_key: str, *,
                 final: bool) -> None:
        """One mail transaction with what ``walk`` has left; the connection
        is cached afterwards when it ended cleanly."""
        walk.connected(self._clock())
        conn.uses += 1
        result = DeliveryResult()
        clean = False
        try:
            clean = self._transaction(conn, walk.pending_request(), result)
        except Trouble as trouble:
            for rcpt in walk.left:
                result.outcomes.setdefault(rcpt.index, trouble.outcome)
        walk.decide(log, result, final, conn.uses)
        if clean:
            self.cache.release(cache_key, conn)
        else:
            conn.close()

    def _open(self, server: Server, site: Destination, policy: TLSPolicy,
              creds: Credentials | None, request: DeliveryRequest) -> SmtpConnection:
        try:
            return self._connect(server, site, policy, creds)
        except HandshakeFailed as failed:
            waited = request.active_time - request.arrival_time
            if policy.level != "may" or creds is not None \
                    or waited < self._config["minimal_backoff_time"]:
                raise Trouble("4.7.5", "Cannot start TLS: handshake failure", failed.relay) from None
            log.info("%s: Cannot start TLS: handshake failure", request.queue_id)
        return self._connect(server, site, TLSPolicy("none"), creds)

    def _connect(self, server: Server, site: Destination, policy: TLSPolicy,
                 creds: Credentials | None) -> SmtpConnection:
        if server.port == 465 and not self.setup.wrapper:
            log.info('SMTPS wrappermode (TCP port 465) requires setting "smtp_tls_wrappermode = '
                     'yes", and "smtp_tls_security_level = encrypt" (or stronger)')
        conn = connect(server.host, server.port, self._config["smtp_connect_timeout"],
                       line_length_limit=self._config["smtp_line_length_limit"],
                       address=server.address)
        try:
            self.setup.run(conn, site, policy, creds)
        except (Trouble, HandshakeFailed):
            conn.close(polite=False)
            raise
        return conn

    # --- the mail transaction ------------------------------------------------------
    def _transaction(self, conn: SmtpConnection, request: DeliveryRequest,
                     result: DeliveryResult) -> bool:
        """Run MAIL/RCPT/DATA; fill ``result``; True when the connection is
        left in a clean state and may be reused."""
        mail_reply, rcpt_replies, data_reply = self._envelope(conn, request)
        if not mail_reply.is_positive:
            for rcpt in request.recipients:
                result.outcomes[rcpt.index] = reply_outcome(mail_reply, conn, "MAIL FROM")
        accepted: list[RecipientRef] = []
        for rcpt, reply in zip(request.recipients, rcpt_replies):
            if reply.is_positive:
                accepted.append(rcpt)
            elif mail_reply.is_positive:
                result.outcomes[rcpt.index] = reply_outcome(reply, conn, "RCPT TO")
        if data_reply is not None and data_reply.code == 354 and not (accepted and mail_reply.is_positive):
            return False    # the server wants content we will not send: drop, never finish it
        if not accepted or not mail_reply.is_positive:
            return self._reset(conn)
        if data_reply.code != 354:
            for rcpt in accepted:
                result.outcomes[rcpt.index] = reply_outcome(data_reply, conn, "DATA")
            return self._reset(conn)
        conn.write(conn.session.send_data(request.content), self._config["smtp_data_xfer_timeout"],
                   "sending message body")
        final = conn.read_reply(self._config["smtp_data_done_timeout"],
                                "sending end of data -- message may be sent more than once")
        for rcpt in accepted:
            result.outcomes[rcpt.index] = reply_outcome(final, conn, "end of DATA")
        return True

    def _envelope(self, conn: SmtpConnection, request: DeliveryRequest
                  ) -> tuple[Reply, list[Reply], Reply | None]:
        """Send MAIL, RCPTs and DATA; their replies (DATA's is None when it
        was not sent because nothing was accepted without PIPELINING)."""
        # smtp_generic_maps: envelope addresses as the outside world should see them.
        try:
            sender = self.generic.rewrite(request.sender)
            rcpts = [f"RCPT TO:<{self.generic.rewrite(rcpt.address)}>" for rcpt in request.recipients]
        except TemporaryLookupError as exc:
            log.warning("%s: %s map lookup problem -- deferring delivery: %s",
                        request.queue_id, self.generic.maps.parameter, exc)
            raise Trouble("4.3.0", f"{self.generic.maps.parameter} map lookup problem") from None
        mail = f"MAIL FROM:<{sender}>" + self._mail_params(conn, request)
        mail_t, rcpt_t = self._config["smtp_mail_timeout"], self._config["smtp_rcpt_timeout"]
        data_t = self._config["smtp_data_init_timeout"]
        if "PIPELINING" in conn.session.extensions:
            wire = b"".join(conn.session.send_command(line) for line in (mail, *rcpts, "DATA"))
            conn.write(wire, mail_t, "sending MAIL FROM")
            mail_reply = conn.read_reply(mail_t, "sending MAIL FROM")
            rcpt_replies = [conn.read_reply(rcpt_t, "sending RCPT TO") for _ in rcpts]
            return mail_reply, rcpt_replies, conn.read_reply(data_t, "sending DATA command")
        mail_reply = conn.command(mail, mail_t, "sending MAIL FROM")
        if not mail_reply.is_positive:
            return mail_reply, [], None
        rcpt_replies = [conn.command(line, rcpt_t, "sending RCPT TO") for line in rcpts]
        if not any(reply.is_positive for reply in rcpt_replies):
            return mail_reply, rcpt_replies, None
        return mail_reply, rcpt_replies, conn.command("DATA", data_t, "sending DATA command")

    @staticmethod
    def _mail_params(conn: SmtpConnection, request: DeliveryRequest) -> str:
        extensions = conn.session.extensions
        params = {key.upper(): str(value).upper() for key, value in request.params.items()}
        out = ""
        if "SIZE" in extensions:
            out += f" SIZE={len(request.content)}"
        if params.get("BODY") == "8BITMIME" and "8BITMIME" in extensions:
            out += " BODY=8BITMIME"
        return out

    def _reset(self, conn: SmtpConnection) -> bool:
        """RSET after a refused transaction; True when the server agreed."""
        try:
            return conn.command("RSET", self._config["smtp_rset_timeout"], "sending RSET").is_positive
        except Trouble:
            return False


def _fallback_relays(config) -> tuple[Destination, ...]:
    """smtp_fallback_relay's next hops (ConfigError for a malformed one)."""
    try:
        return tuple(parse_nexthop(item) for item in config["smtp_fallback_relay"])
    except ValueError as exc:
        raise ConfigError(str(exc), parameter="smtp_fallback_relay") from None


def _relay(server: Server) -> str:
    """The HOST[IP]:PORT a connection to ``server`` has."""
    return f"{server.host}[{server.address}]:{server.port}"


class _Walk:
    """One delivery attempt across the servers of its next hops: the
    recipients still ``left``, the outcomes decided, and ``why`` the last
    server could not take the ones left (smtp(8)'s recipient marking)."""

    def __init__(self, request: DeliveryRequest, handoff: float) -> None:
        self.request = request
        self.left = list(request.recipients)
        self.result = DeliveryResult()
        self.handoff = handoff
        self.conn_done: float | None = None
        self.why: Outcome | None = None
        self.named = ""   # the parameter that named the next hop tried last, if any
        self._uses: dict[int, int] = {}

    def pending_request(self) -> DeliveryRequest:
        """The request for the recipients left."""
        if len(self.left) == len(self.request.recipients):
            return self.request
        return dataclasses.replace(self.request, recipients=list(self.left))

    def connected(self, now: float) -> None:
        if self.conn_done is None:
            self.conn_done = now

    def decide(self, logger: logging.Logger, result: DeliveryResult, final: bool,
               conn_use: int) -> None:
        """Take one session's outcomes; a temporary failure at a server that
        is not the last to try keeps the recipient for the next server."""
        keep, reasons = [], []
        for rcpt in self.left:
            outcome = result.outcomes[rcpt.index]
            if outcome.status == DEFERRED and not final:
                keep.append(rcpt)
                self.why = outcome
                if outcome.reason not in reasons:
                    reasons.append(outcome.reason)
            else:
                self.result.outcomes[rcpt.index] = outcome
                self._uses[rcpt.index] = conn_use
        for reason in reasons:
            logger.info("%s: %s", self.request.queue_id, reason)
        self.left = keep

    def fail(self, logger: logging.Logger, outcome: Outcome, final: bool) -> None:
        """A session that ended before its transaction (smtp_bulk_fail())."""
        self.decide(logger, DeliveryResult({r.index: outcome for r in self.left}), final, 1)

    def finish(self, logger: logging.Logger, done: float) -> None:
        """The recipients left get ``why``; log every recipient's line."""
        why = self.why or Outcome(DEFERRED, "4.3.0", "server unavailable or unable to receive mail")
        if self.left and why.status == BOUNCED and self.named:
            logger.warning("%s configuration problem", self.named)
            why = dataclasses.replace(why, status=DEFERRED, dsn="4.3.5")
        for rcpt in self.left:
            self.result.outcomes[rcpt.index] = why
        conn_done = self.conn_done if self.conn_done is not None else self.handoff
        for rcpt in self.request.recipients:
            record_outcome(logger, self.request, self.result, rcpt, self.result.outcomes[rcpt.index],
                           (self.handoff, conn_done, done), conn_use=self._uses.get(rcpt.index, 1))

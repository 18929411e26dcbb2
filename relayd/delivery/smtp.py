"""The SMTP delivery agent: Postfix's smtp(8) for one next hop.

Per message: a connection (a cached one for the same next hop, or a new one:
connect, greeting, EHLO or HELO after a 5xx to EHLO), then ONE transaction
with all pending recipients. With PIPELINING offered, MAIL FROM, every RCPT
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
from relayd.delivery.connection import ConnectionCache, SmtpConnection, Trouble, connect
from relayd.delivery.route import Destination
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

    def deliver(self, destination: Destination, request: DeliveryRequest) -> DeliveryResult:
        """One delivery attempt of ``request`` to ``destination``; logs one
        line per recipient and returns every recipient's outcome."""
        handoff = self._clock()
        result, conn, clean = DeliveryResult(), None, False
        conn_done = handoff
        cache_key = destination.nexthop
        try:
            request = self._generic_headers(request)
            creds = self.sasl.credentials(request.sender, destination, request.queue_id)
            if creds is not None:
                cache_key += "\0" + creds.user
            conn = self._connection(destination, request, creds, cache_key)
            conn_done = self._clock()
            conn.uses += 1
            clean = self._transaction(conn, request, result)
        except Trouble as trouble:
            for rcpt in request.recipients:
                result.outcomes.setdefault(rcpt.index, trouble.outcome)
        done = self._clock()
        for rcpt in request.recipients:
            record_outcome(log, request, result, rcpt, result.outcomes[rcpt.index],
                           (handoff, conn_done, done), conn_use=conn.uses if conn else 1)
        if conn is not None:
            if clean:
                self.cache.release(cache_key, conn)
            else:
                conn.close()
        return result

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

    # --- session set-up ---------------------------------------------------------
    def _connection(self, destination: Destination, request: DeliveryRequest,
                    creds: Credentials | None, cache_key: str) -> SmtpConnection:
        try:
            policy = self.policies.policy(destination)
        except PolicyProblem:
            raise Trouble("4.7.5", "client TLS configuration problem") from None
        if self.setup.wrapper and not policy.required:
            log.warning('smtp_tls_wrappermode requires "smtp_tls_security_level = encrypt" '
                        '(or stronger)')
            raise Trouble("4.7.5", "client TLS configuration problem")
        conn = self.cache.take(cache_key)
        if conn is not None:
            return conn
        try:
            return self._open(destination, policy, creds)
        except HandshakeFailed as failed:
            waited = request.active_time - request.arrival_time
            if policy.level != "may" or creds is not None \
                    or waited < self._config["minimal_backoff_time"]:
                raise Trouble("4.7.5", "Cannot start TLS: handshake failure", failed.relay) from None
            log.info("%s: Cannot start TLS: handshake failure", request.queue_id)
        return self._open(destination, TLSPolicy("none"), creds)

    def _open(self, destination: Destination, policy: TLSPolicy,
              creds: Credentials | None) -> SmtpConnection:
        if destination.port == 465 and not self.setup.wrapper:
            log.info('SMTPS wrappermode (TCP port 465) requires setting "smtp_tls_wrappermode = '
                     'yes", and "smtp_tls_security_level = encrypt" (or stronger)')
        conn = connect(destination.host, destination.port, self._config["smtp_connect_timeout"],
                       line_length_limit=self._config["smtp_line_length_limit"])
        try:
            self.setup.run(conn, destination, policy, creds)
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

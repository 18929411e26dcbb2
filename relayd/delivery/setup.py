"""Setting up one SMTP session to a next hop: Postfix's smtp_helo().

Greeting, EHLO (HELO after a 5xx), then STARTTLS as the next hop's
:class:`~relayd.delivery.tlspolicy.TLSPolicy` says and EHLO again over TLS,
then AUTH when there are credentials and the server offers it. With
smtp_tls_wrappermode (implicit TLS, "submissions" on port 465) the
handshake comes first, before the greeting, and there is no STARTTLS. Each way it
can fail is a :class:`~relayd.delivery.connection.Trouble` worded as
smtp(8) words it, except a failed TLS handshake, which raises
:class:`~relayd.tls.client.HandshakeFailed` so that the agent can decide
whether "may" tries again in plaintext:

- STARTTLS not offered at encrypt and above: 4.7.4 "TLS is required, but
  was not offered by host HOST[IP]" (nothing is sent in the clear);
- STARTTLS refused: the same levels fail with the server's reply;
- the certificate does not verify or match at verify/secure: 4.7.5
  "Server certificate not verified".
"""
from __future__ import annotations

import logging

from relayd.config import ConfigError
from relayd.delivery.connection import SmtpConnection, Trouble
from relayd.delivery.route import Destination
from relayd.delivery.sasl import Credentials, SaslClient
from relayd.delivery.tlspolicy import TLSPolicy
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT, Outcome
from relayd.smtp.replies import Reply, with_class
from relayd.tls.client import ClientTLS

__all__ = ["SessionSetup", "reply_outcome"]

log = logging.getLogger("relayd.smtp")


def reply_outcome(reply: Reply, conn: SmtpConnection, command: str) -> Outcome:
    """A recipient's outcome from a server reply, worded like smtp(8)."""
    wire = " ".join(reply.lines())
    dsn = reply.status or with_class("2.0.0", reply.code)
    if reply.is_positive:
        return Outcome(SENT, dsn, wire, conn.relay)
    status = DEFERRED if reply.is_transient else BOUNCED
    return Outcome(status, dsn, f"host {conn.name} said: {wire} (in reply to {command} command)",
                   conn.relay, conn.host, wire)


class SessionSetup:
    """The steps from the greeting to a session ready for MAIL FROM."""

    def __init__(self, config, tls: ClientTLS, sasl: SaslClient) -> None:
        self._config, self.tls, self.sasl = config, tls, sasl
        self.wrapper = config["smtp_tls_wrappermode"]   # TLS before the greeting (port 465)

    def run(self, conn: SmtpConnection, destination: Destination, policy: TLSPolicy,
            creds: Credentials | None) -> None:
        """(TLS in wrapper mode,) greeting, EHLO, STARTTLS, EHLO, AUTH on a new connection."""
        if self.wrapper:
            self._handshake(conn, destination, policy)
        timeout = self._config["smtp_helo_timeout"]
        greeting = conn.read_reply(timeout, "receiving the initial server greeting")
        if not greeting.is_positive:
            # Postfix skips a host that will not talk (smtp_skip_5xx_greeting):
            # with no other host to try, the mail is deferred, never bounced.
            dsn = with_class(greeting.status or "4.0.0", 4)
            raise Trouble(dsn, f"host {conn.name} refused to talk to me: {' '.join(greeting.lines())}",
                          conn.relay)
        self._ehlo(conn)
        if not self.wrapper and policy.level != "none" and self._starttls(conn, destination, policy):
            self._ehlo(conn)
        if conn.tls is not None:
            self.tls.remember(conn.sock, conn.tls, conn.tls_key)  # its tickets came by now
        if creds is not None and self.sasl.enabled and "AUTH" in conn.session.extensions:
            self.sasl.authenticate(conn, creds, timeout)

    def _ehlo(self, conn: SmtpConnection) -> None:
        timeout, myhostname = self._config["smtp_helo_timeout"], self._config["myhostname"]
        reply = conn.command(f"EHLO {myhostname}", timeout, "performing the EHLO handshake")
        command = "EHLO"
        if reply.is_permanent:
            command = "HELO"
            reply = conn.command(f"HELO {myhostname}", timeout, "performing the HELO handshake")
        if not reply.is_positive:
            raise Trouble.of(reply_outcome(reply, conn, command))

    def _starttls(self, conn: SmtpConnection, destination: Destination, policy: TLSPolicy) -> bool:
        """STARTTLS and the handshake; True when the session is now over TLS."""
        if "STARTTLS" not in conn.session.extensions:
            if policy.required:
                raise Trouble("4.7.4", f"TLS is required, but was not offered by host {conn.name}",
                              conn.relay)
            return False
        reply = conn.command("STARTTLS", self.tls.timeout, "receiving the STARTTLS response")
        if not reply.is_positive:
            if not policy.required:
                return False  # continue in plaintext, as Postfix does at level may
            wire = " ".join(reply.lines())
            outcome = reply_outcome(reply, conn, "STARTTLS")
            trouble = Trouble(outcome.dsn, "", conn.relay)
            trouble.outcome = Outcome(outcome.status, outcome.dsn,
                                      f"TLS is required, but host {conn.name} refused to start "
                                      f"TLS: {wire}", conn.relay, conn.host, wire)
            raise trouble
        self._handshake(conn, destination, policy)
        return True

    def _handshake(self, conn: SmtpConnection, destination: Destination, policy: TLSPolicy) -> None:
        """The TLS handshake and the certificate check of verify/secure."""
        try:
            ctx = self.tls.context(policy.protocols, policy.grade, policy.exclude)
        except ConfigError as exc:   # e.g. a policy's exclude= that leaves no cipher
            log.warning("%s: %s", conn.relay, exc)
            raise Trouble("4.7.5", "client TLS configuration problem", conn.relay) from None
        key = (conn.relay, policy)
        tls, status = self.tls.start(conn.sock, ctx, namaddrport=conn.relay,
                                     server_name=policy.server_name(destination),
                                     match=policy.names(destination) if policy.must_match else None,
                                     session_key=key)
        conn.start_tls(tls, status, key)
        if policy.must_match and not status.matched:
            raise Trouble("4.7.5", "Server certificate not verified", conn.relay)

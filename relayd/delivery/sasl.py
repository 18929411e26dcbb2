"""SMTP AUTH towards a next hop: Postfix's smtp_sasl_glue.c and smtp_sasl_proto.c.

Credentials come from smtp_sasl_password_maps as ``user:password`` (the
first colon ends the user name), looked up as Postfix does: with
smtp_sender_dependent_authentication the envelope sender first (the full
address, without its extension, then ``@domain``), then the server's host
name, then the next hop as written (``[host]:port``, ``[host]``, ``host``).
No credentials: the client talks to the server as a stranger, without AUTH.

The mechanism is PLAIN or LOGIN, whichever the server offers (PLAIN first),
after smtp_sasl_mechanism_filter and the security options of the
connection: smtp_sasl_security_options in plaintext,
smtp_sasl_tls_security_options over TLS, smtp_sasl_tls_verified_security_options
over TLS with a verified certificate. PLAIN and LOGIN send the password
itself, so any option but noanonymous rules them out there.

A failed AUTH ends the connection (it is never reused) and defers the mail
(smtp_sasl_auth_soft_bounce = yes turns a 5xx into 4.x.x), worded as
Postfix words it: "SASL authentication failed; server HOST[IP] said: 535 ...".
"""
from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

from relayd.delivery.connection import SmtpConnection, Trouble
from relayd.delivery.route import Destination
from relayd.queue.outcome import BOUNCED, DEFERRED, Outcome
from relayd.rewrite.maps import AddressMaps
from relayd.smtp.replies import with_class
from relayd.tables.base import TemporaryLookupError

__all__ = ["Credentials", "SaslClient"]

log = logging.getLogger("relayd.smtp")

_MECHANISMS = ("PLAIN", "LOGIN")          # in order of preference
_COMMAND_LIMIT = 512                      # RFC 5321 command line, CRLF included
_ONLY_NOANONYMOUS = {"noanonymous"}       # the options PLAIN and LOGIN satisfy


@dataclass(frozen=True)
class Credentials:
    """A user name and password for one next hop (or one sender)."""

    user: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r})"  # never the password in a log or traceback


class SaslClient:
    """smtp_sasl_* from main.cf: credential lookup and the AUTH exchange."""

    def __init__(self, config) -> None:
        self.enabled = config["smtp_sasl_auth_enable"]
        self.maps = AddressMaps(config, "smtp_sasl_password_maps") if self.enabled else None
        self.per_sender = config["smtp_sender_dependent_authentication"]
        self.soft_bounce = config["smtp_sasl_auth_soft_bounce"]
        self.options = {
            "plain": set(config["smtp_sasl_security_options"]),
            "tls": set(config["smtp_sasl_tls_security_options"]),
            "verified": set(config["smtp_sasl_tls_verified_security_options"])}
        self.filter = [m.upper() for m in config["smtp_sasl_mechanism_filter"]]

    def credentials(self, sender: str, destination: Destination, queue_id: str) -> Credentials | None:
        """The credentials to use, or None; Trouble when the table cannot answer."""
        if not self.maps:
            return None
        try:
            value = None
            if self.per_sender and sender:
                found = self.maps.find(sender)
                value = found[0] if found else None
            for key in (destination.host, destination.nexthop):
                if value is None:
                    value = self.maps.find_key(key, partial=False)
        except TemporaryLookupError:
            log.warning("%s: smtp_sasl_password_maps lookup error", queue_id)
            raise Trouble("4.3.0", "smtp_sasl_password_maps lookup error") from None
        if value is None:
            return None
        user, _, password = value.partition(":")
        return Credentials(user, password)

    def mechanisms(self, conn: SmtpConnection) -> list[str] | None:
        """Mechanisms to try, from what the server offers and the filter;
        None when the server offered AUTH but the filter left nothing."""
        offered = conn.session.extensions.get("AUTH", "").upper().split()
        if self.filter:
            allowed = [m for m in self.filter if not m.startswith("!")] or list(_MECHANISMS)
            offered = [m for m in offered if m in allowed and "!" + m not in self.filter]
        usable = [m for m in _MECHANISMS if m in offered]
        return usable or None

    def authenticate(self, conn: SmtpConnection, creds: Credentials, timeout: float) -> None:
        """AUTH on ``conn`` with ``creds``; Trouble when it fails."""
        mechanisms = self.mechanisms(conn)
        if mechanisms is None:
            raise Trouble("4.7.0", f"SASL authentication failed: server {conn.name} offered no "
                                   "compatible authentication mechanisms for this type of "
                                   "connection security", conn.relay)
        kind = "plain" if conn.tls is None else "verified" if conn.tls.matched else "tls"
        if not self.options[kind] <= _ONLY_NOANONYMOUS:
            log.warning("SASL authentication failure: No worthy mechs found")
            raise Trouble("4.7.0", f"SASL authentication failed; cannot authenticate to server "
                                   f"{conn.name}: no mechanism available", conn.relay)
        mechanism = mechanisms[0]
        reply = self._exchange(conn, mechanism, creds, timeout)
        if reply.is_positive:
            conn.sasl_user = creds.user
            return
        wire = " ".join(reply.lines())
        dsn = reply.status or with_class("4.7.0", reply.code)
        if self.soft_bounce and dsn.startswith("5"):
            dsn = "4" + dsn[1:]
        status = DEFERRED if dsn.startswith("4") else BOUNCED
        trouble = Trouble(dsn, "", conn.relay)
        trouble.outcome = Outcome(status, dsn, f"SASL authentication failed; server {conn.name} "
                                               f"said: {wire}", conn.relay, conn.host, wire)
        raise trouble

    @staticmethod
    def _exchange(conn: SmtpConnection, mechanism: str, creds: Credentials, timeout: float):
        """Send AUTH and answer the server's challenges; the final reply."""
        doing = "sending AUTH command"
        if mechanism == "PLAIN":
            responses = [_b64(f"\0{creds.user}\0{creds.password}")]
        else:
            responses = [_b64(creds.user), _b64(creds.password)]
        command = f"AUTH {mechanism}"
        if mechanism == "PLAIN" and len(command) + len(responses[0]) + 3 <= _COMMAND_LIMIT:
            command += " " + responses.pop(0)   # the initial response, when it fits the line
        reply = conn.command(command, timeout, doing)
        while reply.code == 334:
            if not responses:
                raise Trouble("4.3.0", "SASL authentication failed; authentication protocol "
                                       f"loop with server {conn.name}", conn.relay)
            reply = conn.command(responses.pop(0), timeout, doing)
        return reply


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")

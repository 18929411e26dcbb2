"""SMTP AUTH (RFC 4954) in the dialogue: one session's SASL exchange and who it authenticated.

The dialogue hands each AUTH command and each answer to a 334 here and gets
the reply back: a 334 challenge, 235 once the back end accepted the
password, or the refusal (504 for a mechanism not offered; 501, 535, 454
otherwise). What follows from a reply stays with the dialogue: counting it
as an error, slowing the client down, telling the restriction lists who
logged in. This module keeps the exchange in progress, asks the back end
(:mod:`relayd.sasl.backend`) and writes smtpd's warnings about failures.
"""
from __future__ import annotations

import logging

from relayd.metrics import METER
from relayd.sasl import mechanisms
from relayd.sasl.backend import OK, TEMP, AuthClient
from relayd.smtp.replies import (R235_AUTHENTICATED, R334_CHALLENGE, R454_SASL_TEMPORARY,
                                 R501_SASL_ABORTED, R504_SASL_MECHANISM, R535_SASL_FAILED, Reply)
from relayd.smtp.text import printable

log = logging.getLogger("relayd.smtpd")

__all__ = ["SessionAuth"]


class SessionAuth:
    """The SASL side of one session.

    ``authenticator`` is the back end (None when smtpd_sasl_auth_enable is
    off), ``offered`` the mechanisms the EHLO reply lists, ``peer`` the
    client as logged ("name[address]").
    """

    __slots__ = ("authenticator", "offered", "peer", "username", "method", "_exchange")

    def __init__(self, authenticator, offered, peer: str):
        self.authenticator = authenticator
        self.offered = offered
        self.peer = peer
        self.username = ""   # once AUTH succeeded (Postfix's state->sasl_username)
        self.method = ""
        self._exchange = None   # (mechanism, the SASL exchange) while a 334 is answered

    def start(self, mechanism: str, initial_response: str | None, client: AuthClient) -> Reply:
        """The reply to ``AUTH mechanism [initial-response]``."""
        exchange = mechanisms.start(mechanism) if mechanism in self.offered else None
        if exchange is None:
            return R504_SASL_MECHANISM.format(printable(mechanism))
        self._exchange = (mechanism, exchange)
        return self._step(exchange.start(initial_response), client)

    def respond(self, line: str, client: AuthClient) -> Reply:
        """The reply to the client's answer to a 334 ("*" cancels, RFC 4954)."""
        mechanism, exchange = self._exchange
        if line.strip() == "*":
            self._exchange = None
            log.warning("%s: SASL %s authentication aborted", self.peer, mechanism)
            return R501_SASL_ABORTED
        return self._step(exchange.respond(line), client)

    def forget(self) -> None:
        """Forget who authenticated (STARTTLS reset the session)."""
        self.username = self.method = ""

    def log_fields(self, sender: str | None) -> str:
        """What smtpd adds to the "client=" line; ``sender`` is MAIL FROM's AUTH= parameter."""
        if not self.username:
            return ""
        text = f", sasl_method={self.method}, sasl_username={self.username}"
        if sender and sender != "<>":
            text += f", sasl_sender={printable(sender)}"
        return text

    def _step(self, step, client: AuthClient) -> Reply:
        if type(step) is mechanisms.Challenge:
            return R334_CHALLENGE.format(step.line())
        mechanism, _ = self._exchange
        self._exchange = None
        if type(step) is mechanisms.Refusal:
            reason, reply, username = step.reply.text, step.reply, step.username
        else:
            result = self.authenticator.verify(step.username, step.password, client)
            username = step.username
            if result.status == OK:
                self.username, self.method = printable(result.username or username), mechanism
                METER.inc("smtpd_sasl_authentications", mechanism, "success")
                return R235_AUTHENTICATED
            reason = result.reason
            reply = (R454_SASL_TEMPORARY if result.status == TEMP else R535_SASL_FAILED).format(reason)
        METER.inc("smtpd_sasl_authentications", mechanism,
                  "temporary" if reply.code == 454 else "failure")
        METER.inc("smtpd_sasl_authentication_failures")
        log.warning("%s: SASL %s authentication failed: %s, sasl_username=%s", self.peer,
                    mechanism, reason, printable(username) if username else "(unavailable)")
        return reply

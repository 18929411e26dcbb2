"""The SMTP dialogue of one session: protocol events and policy verdicts in, replies out.

This is smtpd's side of the conversation written once, without I/O (no
socket, gevent, clock or file system): the gevent session driver
(:mod:`relayd.edge.session`), :class:`relayd.testing.PluginHarness` and the
tests all drive it, so what a test sees is what a client sees. It owns the
protocol core (:class:`~relayd.smtp.server.ServerSession`) and turns each
event into a reply: the restriction lists decide through the
:class:`~relayd.pipeline.policy.SessionPolicy`, the message goes to cleanup
(an object with ``open(...)`` giving a message with ``feed``, ``end``,
``commit``, ``abort``: :class:`relayd.cleanup.message.Cleanup`), and a
``queue`` answers ``has_room()`` and ``new_queue_id()``. It counts commands
and errors (smtpd_soft/hard_error_limit, smtpd_junk_command_limit) and
writes smtpd's session log lines: ``connect from``, ``disconnect from ...``
with the command counts, ``lost connection after X``, ``timeout after X``,
``too many errors after X``.

The driver's loop::

    dialogue.connect(); dialogue.greet()
    while True:
        step = dialogue.next_step()
        if step is NEED_DATA: write(dialogue.take_output()); dialogue.receive_data(read())
        elif step is CLOSE: write(dialogue.take_output()); break
        elif step: sleep(step)          # smtpd_error_sleep_time, past the soft error limit
    dialogue.finish()

Every step but NEED_DATA means the client made progress (a session deadline
may move). Replies to pipelined commands collect in the output until the
core needs more input (RFC 2920).
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass

from relayd.pipeline.hooks import (HOOK_CONNECT, HOOK_DATA_END, HOOK_QUEUED, ConnectEvent,
                                   DataEndEvent, QueuedEvent)
from relayd.edge.auth import SessionAuth
from relayd.metrics import METER, tls_labels
from relayd.sasl.backend import AuthClient, open_backend
from relayd.smtp import events as ev
from relayd.smtp.events import NEED_DATA
from relayd.smtp.replies import (R214_HELP, R220_READY_FOR_TLS, R221_BYE, R250_HELO, R250_OK,
                                 R250_QUEUED, R250_RECIPIENT_OK, R250_SENDER_OK, R252_VRFY,
                                 R354_START_DATA, R421_TIMEOUT, R421_TOO_MANY_ERRORS,
                                 R450_TOO_MANY_AUTH, R452_INSUFFICIENT_STORAGE,
                                 R452_TOO_MANY_RECIPIENTS, R500_BAD_SYNTAX, R500_BAD_UTF8,
                                 R500_UNRECOGNIZED, R502_NOT_IMPLEMENTED, R502_VRFY_DISABLED,
                                 R530_STARTTLS_FIRST, R538_ENCRYPTION_REQUIRED, Reply)
from relayd.smtp.text import printable

log = logging.getLogger("relayd.smtpd")

__all__ = ["CLOSE", "NEED_DATA", "START_TLS", "DialogueSettings", "SmtpDialogue"]


class _Close:
    """The session is over: write what is left of the output and close."""

    def __repr__(self) -> str:
        return "CLOSE"


CLOSE = _Close()


class _StartTLS:
    """The 220 to STARTTLS is in the output: write it, do the server handshake,
    then call :meth:`SmtpDialogue.tls_started` (or :meth:`SmtpDialogue.tls_failed`)."""

    def __repr__(self) -> str:
        return "START_TLS"


START_TLS = _StartTLS()


@dataclass(frozen=True, slots=True)
class DialogueSettings:
    """What the dialogue needs from an smtpd service's configuration, read once
    (:meth:`from_config`: the values and their defaults come from params.py)."""

    service: str
    myhostname: str
    banner: str
    recipient_limit: int
    hard_error_limit: int
    soft_error_limit: int
    error_sleep_time: float
    junk_command_limit: int
    vrfy_enabled: bool
    # SMTP AUTH: the back end (relayd.sasl.backend.open_backend; None when
    # smtpd_sasl_auth_enable is off), smtpd_tls_auth_only, smtpd_client_auth_rate_limit.
    authenticator: object = None
    auth_tls_only: bool = True
    auth_rate_limit: int = 0

    @classmethod
    def from_config(cls, config, service: str = "smtp") -> "DialogueSettings":
        return cls(
            service=service, myhostname=config["myhostname"], banner=config["smtpd_banner"],
            recipient_limit=config["smtpd_recipient_limit"],
            hard_error_limit=config["smtpd_hard_error_limit"],
            soft_error_limit=config["smtpd_soft_error_limit"],
            error_sleep_time=config["smtpd_error_sleep_time"],
            junk_command_limit=config["smtpd_junk_command_limit"],
            vrfy_enabled=not config["disable_vrfy_command"],
            authenticator=open_backend(config), auth_tls_only=config["smtpd_tls_auth_only"],
            auth_rate_limit=config["smtpd_client_auth_rate_limit"])

    def core_options(self, config) -> dict:
        """The keyword arguments of the :class:`~relayd.smtp.server.ServerSession`."""
        return dict(hostname=self.myhostname, message_size_limit=config["message_size_limit"],
                    line_length_limit=config["line_length_limit"],
                    bare_newline=config["smtpd_forbid_bare_newline"],
                    helo_required=config["smtpd_helo_required"], vrfy_enabled=self.vrfy_enabled,
                    auth_mechanisms=self.authenticator.mechanisms() if self.authenticator else (),
                    auth_tls_only=self.auth_tls_only)


class Transaction:
    """What one MAIL ... DATA transaction has gathered so far."""

    __slots__ = ("sender", "params", "recipients", "queue_id", "message")

    def __init__(self, sender: str, params: dict):
        self.sender = sender
        self.params = params
        self.recipients: list[str] = []
        self.queue_id = ""
        self.message = None  # cleanup's message, from DATA on

    def abort(self) -> None:
        if self.message is not None:
            self.message.abort()
            self.message = None


class SmtpDialogue:
    """One client connection's SMTP dialogue (see the module doc).

    ``guard`` is a reusable context manager the commit runs under (the driver
    uses it so that no deadline interrupts a commit that may already be durable).
    """

    def __init__(self, settings: DialogueSettings, core, policy, *, cleanup, queue, hooks,
                 client_name: str = "unknown", client_addr: str = "", notes: dict | None = None,
                 guard=nullcontext()):
        self.settings = settings
        self.core = core
        self.policy = policy
        self.cleanup = cleanup
        self.queue = queue
        self.hooks = hooks
        self.client_name = client_name
        self.client_addr = client_addr
        self.peer = f"{client_name}[{client_addr}]"
        self.notes = notes if notes is not None else {}
        self.guard = guard
        self.helo = ""
        self.protocol = "SMTP"
        self.tx: Transaction | None = None
        self.errors = 0
        self.junk = 0  # HELO/EHLO/RSET/NOOP/VRFY since the last message (smtpd_junk_command_limit)
        self.counts: dict[str, list[int]] = {}
        self.last_command = "CONNECT"
        self.output: list[bytes] = []  # replies not yet written (answers to pipelined commands)
        self._pause = 0.0
        self.tls = None               # the TLSState once a handshake succeeded
        self.tls_required = False     # smtpd_tls_security_level = encrypt
        self.tls_comment: tuple[str, ...] = ()  # smtpd_tls_received_header's Received lines
        self.auth = SessionAuth(settings.authenticator, core.auth_mechanisms, self.peer)
        self.local_address = str  # the driver's: the server address the client reached, or ""
        self.auth_rate = int      # the driver's: count an AUTH; the client's AUTHs in the window

    # -- the driver's side ----------------------------------------------------------------

    def connect(self) -> None:
        """The connection is open: log it and fire the ``connect`` hook."""
        log.info("connect from %s", self.peer)
        METER.inc("smtpd_connects")
        METER.inc("smtpd_sessions_opened", self.settings.service)
        if self.hooks.hooks(HOOK_CONNECT):
            self.hooks.fire(HOOK_CONNECT, ConnectEvent(self.policy.view, self.settings.service))

    def greet(self) -> None:
        """The greeting, or the connect-time rejection that replaces it."""
        refusal = self.policy.on_connect()
        if refusal is not None:
            METER.inc("smtpd_commands", "CONNECT", _CODES[refusal.code], refusal.status)
        self.output.append(refusal.to_bytes() if refusal is not None
                           else self.core.greeting(self.settings.banner))

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; b"" when it closed its side."""
        self.core.receive_data(data)

    def take_output(self) -> bytes:
        """The replies collected so far, to be written in one go."""
        data = b"".join(self.output)
        self.output.clear()
        return data

    def next_step(self):
        """Handle the next event: NEED_DATA (write the output, then read), CLOSE
        (write the output, then close), a number of seconds to wait before going on
        (smtpd_error_sleep_time), or None. ProtocolError passes: see :meth:`protocol_error`."""
        event = self.core.next_event()
        if event is NEED_DATA:
            return NEED_DATA
        kind = type(event)
        if kind is ev.DataChunk:
            if event.data:
                self.tx.message.feed(event.data, event.checked)
            return None
        if self.policy.access_denied is not None and kind not in _ALWAYS_ANSWERED:
            reply = self._failed("unknown", self.policy.access_denied)
        else:
            reply = self.HANDLERS[kind](self, event)
        if reply is None:
            return CLOSE
        METER.inc("smtpd_commands", _COMMANDS.get(kind) or _helo_word(event),
                  _CODES[reply.code], reply.status)
        self.output.append(self.core.send(reply))
        if reply.code in (221, 421):
            return CLOSE
        pause, self._pause = self._pause, 0.0
        return pause or None

    def tls_started(self, state, *, loglevel: int = 1, comment: tuple[str, ...] = (),
                    starttls: bool = True) -> None:
        """The handshake succeeded (after STARTTLS, or before the greeting in wrapper
        mode, ``starttls=False``): the client starts over with EHLO (RFC 3207 4.2).
        ``loglevel`` is smtpd_tls_loglevel: 1 logs the summary line, 2 also the
        client certificate's names and fingerprints, as tls_server.c does."""
        if starttls:
            self.core.starttls_done()
        self._reset_message()
        self.helo, self.protocol = "", "SMTP"
        self.tls, self.tls_comment = state, comment
        self.policy.update(helo_name="", protocol="SMTP", **state.session_facts())
        if loglevel >= 2 and state.fingerprint is not None:
            log.info("%s", state.certificate_line(self.peer))
        if loglevel >= 1:
            log.info("%s", state.log_line(self.peer))
        METER.inc("smtpd_tls_connections", *tls_labels(state))

    def tls_failed(self, reason: str, problems: list[str] | tuple = ()) -> None:
        """The handshake failed: log it as tls_server.c does (``reason`` after
        "SSL_accept error from ...:", then a warning per OpenSSL error in
        ``problems``); the connection ends."""
        log.info("SSL_accept error from %s: %s", self.peer, reason)
        for problem in problems:
            log.warning("TLS library problem: %s", problem)
        METER.inc("smtpd_tls_handshake_failures")
        self._lost()

    def received_protocol(self) -> str:
        """The "with" word of Received (RFC 3848): ESMTP, then "S" under TLS and
        "A" once the client authenticated (ESMTPS, ESMTPA, ESMTPSA); Postfix
        adds them to ESMTP only."""
        if self.protocol != "ESMTP":
            return self.protocol
        return "ESMTP" + ("S" if self.tls is not None else "") + ("A" if self.auth.username else "")

    def where(self) -> str:
        """The state named in "timeout after ..." lines: the last command, or
        inside the message content "DATA (N bytes)" as smtpd.c logs it."""
        tx = self.tx
        if tx is not None and tx.message is not None:
            return f"DATA ({self.core.data_size} bytes)"
        return self.last_command

    def timed_out(self) -> bytes:
        """The session deadline passed: log it; the output and the 421 to write last."""
        log.info("timeout after %s from %s", self.where(), self.peer)
        return self.take_output() + R421_TIMEOUT.format(self.settings.myhostname).to_bytes()

    def protocol_error(self, exc) -> bytes:
        """The core raised ProtocolError: log it; the output and its reply to write last."""
        log.info("%s after %s from %s", exc.reply.text, self.where(), self.peer)
        return self.take_output() + exc.reply.to_bytes()

    def connection_lost(self) -> None:
        """The connection broke (or the client closed it without QUIT)."""
        # smtpd.c logs no lost connection right after a message (the client skipped QUIT).
        if self.last_command != _END_OF_MESSAGE:
            self._lost()

    def _lost(self) -> None:
        where = self.where()
        log.info("lost connection after %s from %s", where, self.peer)
        METER.inc("smtpd_connections_lost", where.split(" ", 1)[0])

    def finish(self) -> None:
        """The session is over: drop an unfinished message; log the disconnect."""
        if self.tx is not None:
            self.tx.abort()
        log.info("disconnect from %s%s", self.peer, self._command_stats())
        METER.inc("smtpd_disconnects")

    # -- counting -------------------------------------------------------------------------

    def _count(self, name: str, ok: bool, where: str = "") -> None:
        """Count command ``name``; ``where`` is the session's state after it, for
        the log (Postfix's state->where), when it is not the command's name."""
        c = self.counts.get(name)
        if c is None:
            c = self.counts[name] = [0, 0]
        c[0] += ok
        c[1] += 1
        self.last_command = where or name.upper()

    def _command_stats(self) -> str:
        parts = []
        total_ok = total = 0
        for name, (ok, n) in self.counts.items():
            parts.append(f"{name}={ok}" if ok == n else f"{name}={ok}/{n}")
            total_ok += ok
            total += n
        if not total:
            return ""
        parts.append(f"commands={total_ok}" if total_ok == total else f"commands={total_ok}/{total}")
        return " " + " ".join(parts)

    def _failed(self, name: str, reply: Reply, where: str = "") -> Reply:
        """Count an error reply; past the hard limit the client is disconnected.

        Past the soft limit each error reply is delayed (smtpd_error_sleep_time)."""
        self._count(name, False, where)
        return self._error(reply)

    def _error(self, reply: Reply) -> Reply:
        """Count one error against the soft and hard limits (see :meth:`_failed`)."""
        self.errors += 1
        settings = self.settings
        if self.errors >= settings.hard_error_limit:
            log.info("too many errors after %s from %s", self.last_command, self.peer)
            return R421_TOO_MANY_ERRORS.format(settings.myhostname)
        if self.errors >= settings.soft_error_limit and settings.error_sleep_time:
            self._pause = settings.error_sleep_time
        return reply

    def _junk(self, reply: Reply) -> Reply:
        """Count a junk command (Postfix's SMTPD_CMD_FLAG_LIMIT: HELO, EHLO, RSET,
        NOOP, VRFY) answered ``reply``; past smtpd_junk_command_limit each one
        also counts as an error, so a client cannot keep a session busy with them."""
        self.junk += 1
        # Postfix: "if (state->junk_cmds++ > var_smtpd_junk_cmd_limit) error_count++"
        if self.junk <= self.settings.junk_command_limit + 1 or reply.code == 421:
            return reply
        return self._error(reply)

    # -- commands -------------------------------------------------------------------------

    def on_helo(self, event: ev.Helo) -> Reply:
        self._forget_stale_auth()
        name = "ehlo" if event.extended else "helo"
        helo = printable(event.name).translate(_NEUTER)
        refusal = self.policy.on_helo(helo, event.extended)
        if refusal is not None:  # the core keeps the transaction: so does the dialogue (smtpd.c)
            return self._junk(self._failed(name, refusal))
        self._reset_message()
        self.helo = helo
        self.protocol = "ESMTP" if event.extended else "SMTP"
        self._count(name, True)
        if event.extended:
            return self._junk(self.core.ehlo_reply())
        return self._junk(R250_HELO.format(self.settings.myhostname))

    def _note_pipelining(self) -> None:
        """A client that did not say EHLO may not send commands ahead of replies
        (reject_unauth_pipelining): tell the policy when input is already waiting."""
        if self.protocol != "ESMTP" and self.core.buffered and not self.policy.view.pipelined_early:
            self.policy.update(pipelined_early=True)

    def on_mail(self, event: ev.Mail) -> Reply:
        self._forget_stale_auth()
        if self.tls_required and self.tls is None:
            return self._failed("mail", R530_STARTTLS_FIRST)
        self._note_pipelining()
        refusal = self.policy.on_mail(event.sender)
        if refusal is None and not self.queue.has_room():   # smtpd_check_queue
            # Postfix checks before it takes the sender: its line has no from=<...>.
            self.policy.reset_transaction()
            refusal = self.policy.refuse(R452_INSUFFICIENT_STORAGE)
        if refusal is not None:
            return self._failed("mail", refusal)
        self.tx = Transaction(event.sender, event.params)
        self._count("mail", True)
        return R250_SENDER_OK

    def on_rcpt(self, event: ev.Rcpt) -> Reply:
        tx = self.tx
        if len(tx.recipients) >= self.settings.recipient_limit:
            return self._failed("rcpt", R452_TOO_MANY_RECIPIENTS)
        self._note_pipelining()
        refusal = self.policy.on_rcpt(event.recipient)  # logs "reject: RCPT from ..." itself
        if refusal is not None:
            return self._failed("rcpt", refusal)
        if not tx.queue_id:
            tx.queue_id = self.policy.queue_id = self.queue.new_queue_id()
            log.info("%s: client=%s%s", tx.queue_id, self.peer,
                     self.auth.log_fields(tx.params.get("AUTH")))
            METER.inc("smtpd_messages_processed", self.auth.method or "NONE")
        tx.recipients.append(event.recipient)
        self._count("rcpt", True)
        return R250_RECIPIENT_OK

    def on_data(self, event: ev.Data) -> Reply:
        self._note_pipelining()
        refusal = self.policy.on_data()
        if refusal is not None:
            return self._failed("data", refusal)
        tx = self.tx
        tx.message = self.cleanup.open(
            queue_id=tx.queue_id, sender=tx.sender, params=tx.params, recipients=tx.recipients,
            client_name=self.client_name, client_addr=self.client_addr, helo=self.helo,
            protocol=self.received_protocol(), actions=self.policy.transaction_actions(),
            tls_comment=self.tls_comment, sasl_username=self.auth.username)
        return R354_START_DATA

    def on_data_end(self, event: ev.DataEnd) -> Reply:
        tx = self.tx
        self.tx = None
        reply = self._end_of_data(tx, event)
        self.policy.reset_transaction()
        if self.hooks.hooks(HOOK_DATA_END):
            self.hooks.fire(HOOK_DATA_END, DataEndEvent(
                self.policy.view, tx.queue_id, tx.sender, tuple(tx.recipients), event.size,
                reply, self.notes))
        return reply

    def _end_of_data(self, tx: Transaction, event: ev.DataEnd) -> Reply:
        if event.error is not None:
            tx.abort()
            return self._failed("data", event.error, _END_OF_MESSAGE)
        refusal = tx.message.end(event.size) or self.policy.on_end_of_data()
        if refusal is not None:
            tx.abort()
            return self._failed("data", refusal, _END_OF_MESSAGE)
        with self.guard:
            outcome = tx.message.commit(self.policy.transaction_actions())
        if isinstance(outcome, Reply):
            return self._failed("data", outcome, _END_OF_MESSAGE)
        if not outcome.discarded and self.hooks.hooks(HOOK_QUEUED):
            self.hooks.fire(HOOK_QUEUED, QueuedEvent(
                self.policy.view, tx.queue_id, outcome.sender, outcome.recipients, outcome.size,
                outcome.message_id, self.notes))
        self._count("data", True, _END_OF_MESSAGE)
        if not outcome.discarded:
            self.errors = self.junk = 0  # Postfix forgives a client that delivered a message
        return R250_QUEUED.format(tx.queue_id)

    def on_rset(self, event) -> Reply:
        self._reset_message()
        self.policy.reset_transaction()
        self._count("rset", True)
        return self._junk(R250_OK)

    def on_noop(self, event) -> Reply:
        self._count("noop", True)
        return self._junk(R250_OK)

    def on_quit(self, event) -> Reply:
        self._count("quit", True)
        return R221_BYE

    def on_vrfy(self, event: ev.Vrfy) -> Reply:
        if not self.settings.vrfy_enabled:
            return self._junk(self._failed("vrfy", R502_VRFY_DISABLED))
        if self.tls_required and self.tls is None:
            return self._junk(self._failed("vrfy", R530_STARTTLS_FIRST))
        # Never reveal whether a user exists (that is what RCPT is for).
        self._count("vrfy", True)
        return self._junk(R252_VRFY.format(event.argument))

    def on_starttls(self, event) -> Reply:
        self._count("starttls", True)
        self._pause = START_TLS   # next_step() hands it to the driver after this reply
        return R220_READY_FOR_TLS

    def on_expn(self, event) -> Reply:
        # Postfix has no EXPN: it never expands a list for a stranger.
        return self._failed("unknown", R500_UNRECOGNIZED)

    def on_unsupported(self, event) -> Reply:
        return self._failed("unknown", R502_NOT_IMPLEMENTED)

    def on_help(self, event) -> Reply:
        self._count("help", True)
        return R214_HELP

    def on_bad_command(self, event: ev.BadCommand) -> Reply:
        if event.reply in _NOT_A_COMMAND:   # smtpd.c: an error, but no command counted
            return self._error(event.reply)
        if event.reply is R538_ENCRYPTION_REQUIRED:   # AUTH before TLS: counted as auth=
            # smtpd_tls_security_level = encrypt: smtpd.c answers every command but
            # EHLO, HELO, STARTTLS, NOOP, HELP, QUIT with 530 before STARTTLS.
            return self._failed("auth", R530_STARTTLS_FIRST if self.tls_required else event.reply)
        return self._failed(getattr(event, "command", "") or "unknown", event.reply)

    # -- SMTP AUTH (RFC 4954) ----------------------------------------------------------

    def on_auth(self, event: ev.Auth) -> Reply:
        self._forget_stale_auth()
        rate = self.auth_rate()
        if rate > self.settings.auth_rate_limit:   # smtpd.c, smtpd_client_auth_rate_limit
            log.warning("AUTH command rate limit exceeded: %d from %s for service %s", rate,
                        self.peer, self.settings.service)
            return self._failed("auth", R450_TOO_MANY_AUTH.format(self.client_addr))
        return self._auth_reply(self.auth.start(event.mechanism, event.initial_response,
                                                self._auth_client()))

    def on_auth_response(self, event: ev.AuthResponse) -> Reply:
        return self._auth_reply(self.auth.respond(event.data, self._auth_client()))

    def _auth_client(self) -> AuthClient:
        return AuthClient(self.client_addr, self.local_address(), self.tls is not None)

    def _auth_reply(self, reply: Reply) -> Reply:
        """Count the exchange's outcome; a failed password check (not an unknown
        mechanism) always slows the next reply down, so that guessing passwords
        costs smtpd_error_sleep_time per attempt."""
        if reply.code == 334:
            return reply
        if reply.code == 235:
            self.policy.update(sasl_username=self.auth.username, sasl_method=self.auth.method)
            self._count("auth", True)
            return reply
        failed = self._failed("auth", reply)
        if reply.code != 504 and failed.code != 421:
            self._pause = max(self._pause, self.settings.error_sleep_time)
        return failed

    def _forget_stale_auth(self) -> None:
        """Forget an authentication the core no longer has (STARTTLS reset the session)."""
        if self.auth.username and not self.core.authenticated:
            self.auth.forget()
            self.policy.update(sasl_username="", sasl_method="")

    def on_closed(self, event) -> None:
        self.connection_lost()
        return None

    def _reset_message(self) -> None:
        if self.tx is not None:
            self.tx.abort()
            self.tx = None

    HANDLERS = {
        ev.Helo: on_helo, ev.Mail: on_mail, ev.Rcpt: on_rcpt, ev.Data: on_data,
        ev.DataEnd: on_data_end, ev.Rset: on_rset, ev.Noop: on_noop, ev.Quit: on_quit,
        ev.Vrfy: on_vrfy, ev.Expn: on_expn, ev.Help: on_help,
        ev.StartTLS: on_starttls, ev.Auth: on_auth, ev.AuthResponse: on_auth_response,
        ev.BadCommand: on_bad_command, ev.ConnectionClosed: on_closed,
    }


# The command label of relayd_smtpd_commands_total, by event (HELO/EHLO: _helo_word).
_COMMANDS = {
    ev.Mail: "MAIL", ev.Rcpt: "RCPT", ev.Data: "DATA", ev.DataEnd: "END-OF-DATA",
    ev.Rset: "RSET", ev.Noop: "NOOP", ev.Quit: "QUIT", ev.Vrfy: "VRFY", ev.Expn: "EXPN",
    ev.Help: "HELP", ev.StartTLS: "STARTTLS", ev.Auth: "AUTH", ev.AuthResponse: "AUTH",
    ev.BadCommand: "UNKNOWN", ev.ConnectionClosed: "UNKNOWN"}
_CODES = {code: str(code) for code in range(200, 600)}  # labels without a str() per reply


def _helo_word(event) -> str:
    return "EHLO" if event.extended else "HELO"


# Postfix's state->where once a message has ended (SMTPD_AFTER_EOM).
_END_OF_MESSAGE = "END-OF-MESSAGE"

# What Postfix's helo_cmd stores of a HELO name: printable(), then these
# (NEUTER_CHARACTERS, smtpd.c) as "?", so the name cannot break a log line's
# "helo=<...>" or a Received header's comment.
_NEUTER = str.maketrans(dict.fromkeys(' <>()\\";@', "?"))

# Lines smtpd.c answers before it looks for a command name: they count as
# errors, not as commands, and leave the state ("after CONNECT") as it was.
_NOT_A_COMMAND = (R500_BAD_UTF8, R500_BAD_SYNTAX)

# Answered as usual even after a connect-time rejection (Postfix: QUIT works).
_ALWAYS_ANSWERED = (ev.Quit, ev.ConnectionClosed)

"""The session driver: one greenlet per SMTP connection.

It owns the socket and nothing else: the protocol core decides what bytes
mean, the restriction lists decide policy, the queue store makes messages
durable. Replies to pipelined commands are collected and written in one
``sendall`` when the core runs out of input (RFC 2920). The idle/drip limit
is a deadline moved forward only when a whole command or data line arrives,
enforced by the :class:`~relayd.edge.deadlines.DeadlineSweeper`.
"""
from __future__ import annotations

import logging

import gevent

from relayd.cleanup.message import Client, Queued
from relayd.edge.deadlines import SessionTimeout
from relayd.pipeline.context import SessionView
from relayd.pipeline.hooks import (HOOK_CONNECT, HOOK_DATA_END, HOOK_QUEUED, ConnectEvent,
                                   DataEndEvent, QueuedEvent)
from relayd.smtp import events as ev
from relayd.smtp.replies import (R214_HELP, R221_BYE, R250_HELO, R250_OK, R250_QUEUED,
                                 R250_RECIPIENT_OK, R250_SENDER_OK, R252_VRFY, R354_START_DATA,
                                 R421_TIMEOUT, R421_TOO_MANY_ERRORS, R452_INSUFFICIENT_STORAGE,
                                 R452_TOO_MANY_RECIPIENTS, R500_UNRECOGNIZED,
                                 R502_NOT_IMPLEMENTED, R502_VRFY_DISABLED, Reply)
from relayd.smtp.server import ProtocolError, ServerSession
from relayd.smtp.text import printable
from relayd.sockets import send_all, send_last

log = logging.getLogger("relayd.smtpd")

INFINITY = float("inf")
RECV_SIZE = 65536


class Transaction:
    """What one MAIL ... DATA transaction has gathered so far."""

    __slots__ = ("sender", "params", "recipients", "queue_id", "message")

    def __init__(self, sender: str, params: dict):
        self.sender = sender
        self.params = params
        self.recipients: list[str] = []
        self.queue_id = ""
        self.message = None  # cleanup's CleanupMessage, from DATA on

    def abort(self) -> None:
        if self.message is not None:
            self.message.abort()
            self.message = None


class SmtpdSession:
    """Serves one client connection; :meth:`run` returns when it is closed."""

    def __init__(self, service, sock, address):
        self.service = service
        self.sock = sock
        self.client_addr = address[0]
        if self.client_addr.startswith("::ffff:") and "." in self.client_addr:
            self.client_addr = self.client_addr[7:]
        self.client_port = address[1]
        self.client_name = "unknown"
        self.peer = f"{self.client_name}[{self.client_addr}]"
        self.core = ServerSession(**service.core_options)
        self.helo = ""
        self.protocol = "SMTP"
        self.tx: Transaction | None = None
        self.errors = 0
        self.junk = 0  # HELO/EHLO/RSET/NOOP/VRFY since the last message (smtpd_junk_command_limit)
        self.counts: dict[str, list[int]] = {}
        self.last_command = "CONNECT"
        self.deadline = INFINITY
        self.greenlet = gevent.getcurrent()
        self.notes: dict = {}
        self.policy = service.restrictions.session(
            SessionView(self.client_addr, self.client_name, self.client_port), self.notes)
        self._out: list[bytes] = []  # replies not yet written (answers to pipelined commands)
        self._writing = False  # a flush is under way (the client may have stopped reading)

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        service = self.service
        log.info("connect from %s", self.peer)
        if service.hooks.hooks(HOOK_CONNECT):
            service.hooks.fire(HOOK_CONNECT, ConnectEvent(self.policy.view, service.name))
        service.sweeper.watch(self)
        try:
            self._serve()
        except SessionTimeout:
            log.info("timeout after %s from %s", self._where(), self.peer)
            self._say_last(R421_TIMEOUT.format(service.myhostname))
        except ProtocolError as exc:
            log.info("%s after %s from %s", exc.reply.text, self._where(), self.peer)
            self._say_last(exc.reply)
        except OSError:
            self._lost_connection()
        finally:
            service.sweeper.unwatch(self)
            if self.tx is not None:
                self.tx.abort()
            self.sock.close()
            log.info("disconnect from %s%s", self.peer, self._command_stats())

    def _serve(self) -> None:
        core = self.core
        sock = self.sock
        timeout = self.service.timeout
        sweeper = self.service.sweeper
        handlers = self.HANDLERS
        out = self._out
        refusal = self.policy.on_connect()
        out.append(refusal.to_bytes() if refusal is not None
                   else core.greeting(self.service.banner))
        self.deadline = sweeper.now() + timeout
        while True:
            event = core.next_event()
            if event is ev.NEED_DATA:
                if out:
                    self._flush()
                data = sock.recv(RECV_SIZE)
                core.receive_data(data)
                continue
            self.deadline = sweeper.now() + timeout
            if type(event) is ev.DataChunk:
                if event.data:
                    self._data_chunk(event)
                continue
            if self.policy.access_denied is not None and type(event) not in _ALWAYS_ANSWERED:
                reply = self._failed("unknown", self.policy.access_denied)
            else:
                reply = handlers[type(event)](self, event)
            if reply is None:
                self._flush()
                return
            out.append(core.send(reply))
            if reply.code in (221, 421):
                self._flush()
                return

    def _flush(self) -> None:
        """Write the collected replies; the session deadline bounds the wait."""
        data = b"".join(self._out)
        self._out.clear()
        if data:
            self._writing = True
            send_all(self.sock, data)
            self._writing = False

    def _say_last(self, reply: Reply) -> None:
        """Write the replies still owed to pipelined commands, then ``reply``,
        without waiting (:func:`~relayd.sockets.send_last`). After a write that
        was cut short nothing more is sent: it would land inside a reply."""
        if not self._writing:
            send_last(self.sock, b"".join(self._out) + reply.to_bytes())

    def _count(self, name: str, ok: bool, where: str = "") -> None:
        """Count command ``name``; ``where`` is the session's state after it, for
        the log (Postfix's state->where), when it is not the command's name."""
        c = self.counts.get(name)
        if c is None:
            c = self.counts[name] = [0, 0]
        c[0] += ok
        c[1] += 1
        self.last_command = where or name.upper()

    def _where(self) -> str:
        """The state named in "timeout after ..." lines: the last command, or
        inside the message content "DATA (N bytes)" as smtpd.c logs it."""
        tx = self.tx
        if tx is not None and tx.message is not None:
            return f"DATA ({self.core.data_size} bytes)"
        return self.last_command

    def _lost_connection(self) -> None:
        # smtpd.c logs no lost connection right after a message (the client skipped QUIT).
        if self.last_command != _END_OF_MESSAGE:
            log.info("lost connection after %s from %s", self._where(), self.peer)

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
        service = self.service
        if self.errors >= service.hard_error_limit:
            log.info("too many errors after %s from %s", self.last_command, self.peer)
            return R421_TOO_MANY_ERRORS.format(service.myhostname)
        if self.errors >= service.soft_error_limit and service.error_sleep_time:
            gevent.sleep(service.error_sleep_time)
        return reply

    def _junk(self, reply: Reply) -> Reply:
        """Count a junk command (Postfix's SMTPD_CMD_FLAG_LIMIT: HELO, EHLO, RSET,
        NOOP, VRFY) answered ``reply``; past smtpd_junk_command_limit each one
        also counts as an error, so a client cannot keep a session busy with them."""
        self.junk += 1
        # Postfix: "if (state->junk_cmds++ > var_smtpd_junk_cmd_limit) error_count++"
        if self.junk <= self.service.junk_command_limit + 1 or reply.code == 421:
            return reply
        return self._error(reply)

    # -- commands ----------------------------------------------------------------------

    def on_helo(self, event: ev.Helo) -> Reply:
        name = "ehlo" if event.extended else "helo"
        helo = printable(event.name).translate(_NEUTER)
        refusal = self.policy.on_helo(helo, event.extended)
        if refusal is not None:  # the core keeps the transaction: so does the driver (smtpd.c)
            return self._junk(self._failed(name, refusal))
        if self.tx is not None:
            self.tx.abort()
            self.tx = None
        self.helo = helo
        self.protocol = "ESMTP" if event.extended else "SMTP"
        self._count(name, True)
        if event.extended:
            return self._junk(self.core.ehlo_reply())
        return self._junk(R250_HELO.format(self.service.myhostname))

    def _note_pipelining(self) -> None:
        """A client that did not say EHLO may not send commands ahead of replies
        (reject_unauth_pipelining): tell the policy when input is already waiting."""
        if self.protocol != "ESMTP" and self.core.buffered and not self.policy.view.pipelined_early:
            self.policy.update(pipelined_early=True)

    def on_mail(self, event: ev.Mail) -> Reply:
        self._note_pipelining()
        refusal = self.policy.on_mail(event.sender)
        if refusal is None and not self.service.store.has_room():   # smtpd_check_queue
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
        service = self.service
        if len(tx.recipients) >= service.recipient_limit:
            return self._failed("rcpt", R452_TOO_MANY_RECIPIENTS)
        self._note_pipelining()
        refusal = self.policy.on_rcpt(event.recipient)  # logs "reject: RCPT from ..." itself
        if refusal is not None:
            return self._failed("rcpt", refusal)
        if not tx.queue_id:
            tx.queue_id = self.policy.queue_id = service.store.new_queue_id()
            log.info("%s: client=%s", tx.queue_id, self.peer)
        tx.recipients.append(event.recipient)
        self._count("rcpt", True)
        return R250_RECIPIENT_OK

    def on_data(self, event: ev.Data) -> Reply:
        self._note_pipelining()
        refusal = self.policy.on_data()
        if refusal is not None:
            return self._failed("data", refusal)
        tx = self.tx
        tx.message = self.service.cleanup.open(
            queue_id=tx.queue_id, sender=tx.sender, params=tx.params, recipients=tx.recipients,
            client=Client(self.client_name, self.client_addr, self.helo, self.protocol),
            actions=self.policy.transaction_actions())
        return R354_START_DATA

    def _data_chunk(self, event: ev.DataChunk) -> None:
        self.tx.message.feed(event.data)

    def on_data_end(self, event: ev.DataEnd) -> Reply:
        tx = self.tx
        self.tx = None
        reply = self._end_of_data(tx, event)
        self.policy.reset_transaction()
        hooks = self.service.hooks
        if hooks.hooks(HOOK_DATA_END):
            hooks.fire(HOOK_DATA_END, DataEndEvent(
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
        service = self.service
        self.deadline = INFINITY  # never interrupt a commit: the message may already be durable
        try:
            outcome = tx.message.commit(self.policy.transaction_actions())
        finally:
            self.deadline = service.sweeper.now() + service.timeout
        if type(outcome) is not Queued:
            return self._failed("data", outcome, _END_OF_MESSAGE)
        if not outcome.discarded and service.hooks.hooks(HOOK_QUEUED):
            service.hooks.fire(HOOK_QUEUED, QueuedEvent(
                self.policy.view, tx.queue_id, outcome.sender, outcome.recipients, outcome.size,
                outcome.message_id, self.notes))
        self._count("data", True, _END_OF_MESSAGE)
        if not outcome.discarded:
            self.errors = self.junk = 0  # Postfix forgives a client that delivered a message
        return R250_QUEUED.format(tx.queue_id)

    def on_rset(self, event) -> Reply:
        self._reset()
        self._count("rset", True)
        return self._junk(R250_OK)

    def on_noop(self, event) -> Reply:
        self._count("noop", True)
        return self._junk(R250_OK)

    def on_quit(self, event) -> Reply:
        self._count("quit", True)
        return R221_BYE

    def on_vrfy(self, event: ev.Vrfy) -> Reply:
        if not self.service.vrfy_enabled:
            return self._junk(self._failed("vrfy", R502_VRFY_DISABLED))
        # Never reveal whether a user exists (that is what RCPT is for).
        self._count("vrfy", True)
        return self._junk(R252_VRFY.format(event.argument))

    def on_expn(self, event) -> Reply:
        # Postfix has no EXPN: it never expands a list for a stranger.
        return self._failed("unknown", R500_UNRECOGNIZED)

    def on_unsupported(self, event) -> Reply:
        return self._failed("unknown", R502_NOT_IMPLEMENTED)

    def on_help(self, event) -> Reply:
        self._count("help", True)
        return R214_HELP

    def on_bad_command(self, event: ev.BadCommand) -> Reply:
        return self._failed(getattr(event, "command", "") or "unknown", event.reply)

    def on_closed(self, event) -> None:
        self._lost_connection()
        return None

    def _reset(self) -> None:
        if self.tx is not None:
            self.tx.abort()
            self.tx = None
        self.policy.reset_transaction()

    HANDLERS = {
        ev.Helo: on_helo, ev.Mail: on_mail, ev.Rcpt: on_rcpt, ev.Data: on_data,
        ev.DataEnd: on_data_end, ev.Rset: on_rset, ev.Noop: on_noop, ev.Quit: on_quit,
        ev.Vrfy: on_vrfy, ev.Expn: on_expn, ev.Help: on_help,
        ev.StartTLS: on_unsupported, ev.Auth: on_unsupported,
        ev.BadCommand: on_bad_command, ev.ConnectionClosed: on_closed,
    }


# Postfix's state->where once a message has ended (SMTPD_AFTER_EOM).
_END_OF_MESSAGE = "END-OF-MESSAGE"

# What Postfix's helo_cmd stores of a HELO name: printable(), then these
# (NEUTER_CHARACTERS, smtpd.c) as "?", so the name cannot break a log line's
# "helo=<...>" or a Received header's comment.
_NEUTER = str.maketrans(dict.fromkeys(' <>()\\";@', "?"))

# Answered as usual even after a connect-time rejection (Postfix: QUIT works).
_ALWAYS_ANSWERED = (ev.Quit, ev.ConnectionClosed)

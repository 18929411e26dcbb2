"""A test harness for plugin authors: scripted SMTP dialogues, no sockets.

::

    from relayd.testing import PluginHarness, parse_replies

    harness = PluginHarness(
        "smtpd_recipient_restrictions = permit_mynetworks, my_check arg,"
        " reject_unauth_destination", client_addr="192.0.2.1")
    out = harness.dialogue(b"EHLO client.example\\r\\nMAIL FROM:<a@example.org>\\r\\n"
                           b"RCPT TO:<b@relay.example>\\r\\nQUIT\\r\\n")
    assert parse_replies(out)[3] == ...          # greeting, EHLO, MAIL, RCPT, QUIT

The harness runs relayd's own SMTP protocol core
(:class:`relayd.smtp.server.ServerSession`) and the per-session policy the
real session driver uses (:meth:`Restrictions.session`, a
:class:`~relayd.pipeline.policy.SessionPolicy`: client, helo, sender,
recipient, data and end-of-data restrictions, smtpd_delay_reject, a
connect-time rejection that replaces the greeting) with every installed
plugin, plus the ``register`` functions given in ``plugins`` (a plugin under
development need not be installed). It answers commands as relayd's
session driver does, fires the ``connect``, ``data-end`` and ``queued``
hooks in the calling greenlet, and keeps each accepted message in
:attr:`PluginHarness.queued` instead of writing a queue, with the actions
of the restriction lists applied: PREPEND headers in its content, HOLD as
``hold``, REDIRECT and BCC in its recipients, FILTER as ``filter``; a
DISCARDed message is answered 250 but not kept. Not run: TLS, AUTH,
cleanup (Received header, address rewriting, hop count), header/body
checks, error limits and their delays, timeouts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable, Iterable

from relayd.config import load_config
from relayd.cleanup.disposition import disposition, prepended_headers
from relayd.pipeline.context import SessionView
from relayd.pipeline.hooks import (HOOK_CONNECT, HOOK_DATA_END, HOOK_QUEUED, ConnectEvent,
                                   DataEndEvent, HookRegistry, QueuedEvent)
from relayd.pipeline.registry import ENTRY_POINT_GROUP, CheckRegistry
from relayd.pipeline.restrictions import Restrictions
from relayd.smtp import events as ev
from relayd.smtp.replies import (R214_HELP, R221_BYE, R250_HELO, R250_OK, R250_QUEUED,
                                 R250_RECIPIENT_OK, R250_SENDER_OK, R252_VRFY, R354_START_DATA,
                                 R452_TOO_MANY_RECIPIENTS, R500_UNRECOGNIZED,
                                 R502_NOT_IMPLEMENTED, R502_VRFY_DISABLED, Reply)
from relayd.smtp.server import ProtocolError, ServerSession

#: What the harness puts in front of the caller's main.cf text (later lines win).
HARNESS_MAIN_CF = """\
myhostname = relayd.test
mydomain = test
mydestination = $myhostname, localhost
mynetworks = 127.0.0.0/8
relay_domains = relay.example
"""

_REPLY_LINE = re.compile(r"^(\d{3})([ -])(?:([245]\.\d{1,3}\.\d{1,3}) )?(.*)$")
_DOT_STUFFING = re.compile(rb"^\.", re.MULTILINE)


class PluginRegistry(CheckRegistry, HookRegistry):
    """A registry offering checks and hooks (CheckRegistry plus HookRegistry)."""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message the harness accepted: envelope (recipients after REDIRECT and
    BCC), content without dot-stuffing (after PREPENDed headers), and whether a
    HOLD or FILTER action applies."""

    queue_id: str
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    hold: bool = False
    filter: str | None = None


class PluginHarness:
    """Runs restriction lists and plugins against scripted SMTP dialogues.

    ``main_cf``: main.cf text added after :data:`HARNESS_MAIN_CF`.
    ``client_addr`` / ``client_name``: the simulated client. ``plugins``:
    extra ``register`` functions to load after the installed ones.
    A bad configuration or an unknown restriction raises ConfigError here,
    as it stops relayd's startup.
    """

    def __init__(self, main_cf: str = "", *, client_addr: str = "192.0.2.1",
                 client_name: str = "unknown", plugins: Iterable[Callable] = ()) -> None:
        self.config = load_config(main_cf=HARNESS_MAIN_CF + main_cf)
        self.registry = PluginRegistry.from_entry_points()
        installed = {ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
        for register in plugins:
            label = f"{register.__module__}:{register.__qualname__}"
            if label not in installed:  # an installed plugin is loaded once, not twice
                self.registry.load_plugin(label, register)
        self.registry.run_hooks_inline = True
        self.restrictions = Restrictions(self.config, self.registry)
        self.client_addr = client_addr
        self.client_name = client_name
        self.queued: list[QueuedMessage] = []
        self._next_queue_id = 1

    def dialogue(self, script: bytes) -> bytes:
        """The greeting and every reply to ``script``, exactly as sent on the wire.

        ``script`` is what the client sends (commands and message content, with
        their CRLFs); the client closes the connection after it.
        """
        return _Dialogue(self).run(script)

    def new_queue_id(self) -> str:
        """A queue id in relayd's format (hexadecimal), unique within this harness."""
        queue_id = f"{self._next_queue_id:012X}"
        self._next_queue_id += 1
        return queue_id


def parse_replies(wire: bytes) -> list[Reply]:
    """Split the server's side of a dialogue into :class:`Reply` values."""
    replies, code, status, lines = [], None, "", []
    for raw in wire.decode("utf-8").split("\r\n")[:-1]:
        m = _REPLY_LINE.match(raw)
        if m is None:
            raise ValueError(f"not an SMTP reply line: {raw!r}")
        code, status = int(m.group(1)), m.group(3) or ""
        lines.append(m.group(4))
        if m.group(2) == " ":
            replies.append(Reply(code, status, "\n".join(lines)))
            lines = []
    if lines:
        raise ValueError("the last reply is unfinished")
    return replies


class _Dialogue:
    """One client connection of a harness: the session driver's decisions, no I/O."""

    def __init__(self, harness: PluginHarness) -> None:
        self.harness = harness
        config = harness.config
        self.core = ServerSession(
            hostname=config["myhostname"], message_size_limit=config["message_size_limit"],
            line_length_limit=config["line_length_limit"],
            bare_newline=config["smtpd_forbid_bare_newline"],
            helo_required=config["smtpd_helo_required"],
            vrfy_enabled=not config["disable_vrfy_command"])
        self.notes: dict = {}
        self.policy = harness.restrictions.session(
            SessionView(harness.client_addr, harness.client_name), self.notes)
        self.queue_id = ""
        self.prepended = b""
        self.chunks: list[bytes] = []

    def run(self, script: bytes) -> bytes:
        harness = self.harness
        harness.registry.fire(HOOK_CONNECT, ConnectEvent(self.policy.view))
        refusal = self.policy.on_connect()
        out = [refusal.to_bytes() if refusal is not None
               else self.core.greeting(harness.config["smtpd_banner"])]
        self.core.receive_data(script)
        self.core.receive_data(b"")
        while True:
            try:
                event = self.core.next_event()
            except ProtocolError as exc:
                out.append(exc.reply.to_bytes())
                return b"".join(out)
            if isinstance(event, ev.ConnectionClosed):
                return b"".join(out)
            if isinstance(event, ev.DataChunk):
                self.chunks.append(event.data)
                continue
            denied = self.policy.access_denied
            reply = self.answer(event) if denied is None or isinstance(event, ev.Quit) else denied
            out.append(self.core.send(reply))
            if reply.code in (221, 421):
                return b"".join(out)

    def answer(self, event) -> Reply:
        """The reply relayd's session driver gives to ``event``."""
        config = self.harness.config
        if isinstance(event, ev.Helo):
            self.reset()
            return self.policy.on_helo(event.name, event.extended) or (
                self.core.ehlo_reply() if event.extended
                else R250_HELO.format(config["myhostname"]))
        if isinstance(event, ev.Mail):
            self.queue_id = ""  # a new transaction gets a new queue id
            return self.policy.on_mail(event.sender) or R250_SENDER_OK
        if isinstance(event, ev.Rset):
            self.reset()
            return R250_OK
        if isinstance(event, ev.Rcpt):
            return self.rcpt(event.recipient)
        if isinstance(event, ev.Data):
            return self.data()
        if isinstance(event, ev.DataEnd):
            return self.data_end(event)
        if isinstance(event, ev.Vrfy):
            return R252_VRFY.format(event.argument) if not config["disable_vrfy_command"] \
                else R502_VRFY_DISABLED
        return _SIMPLE_REPLIES.get(type(event)) or event.reply

    def reset(self) -> None:
        self.queue_id, self.prepended, self.chunks = "", b"", []
        self.policy.reset_transaction()

    def rcpt(self, recipient: str) -> Reply:
        if len(self.core.recipients) >= self.harness.config["smtpd_recipient_limit"]:
            return R452_TOO_MANY_RECIPIENTS
        refusal = self.policy.on_rcpt(recipient)
        if refusal is not None:
            return refusal
        if not self.queue_id:
            self.queue_id = self.policy.queue_id = self.harness.new_queue_id()
        return R250_RECIPIENT_OK

    def data(self) -> Reply:
        refusal = self.policy.on_data()
        if refusal is not None:
            return refusal
        self.chunks = []
        # As the driver: PREPENDs known at DATA are written; later ones come too late.
        self.prepended = prepended_headers(self.policy.transaction_actions())
        return R354_START_DATA

    def data_end(self, event: ev.DataEnd) -> Reply:
        harness = self.harness
        sender, recipients = self.core.sender, tuple(self.core.recipients)
        reply = event.error or self.policy.on_end_of_data()
        if reply is None:
            reply = R250_QUEUED.format(self.queue_id)
            self.queue(sender, recipients, event.size)
        harness.registry.fire(HOOK_DATA_END, DataEndEvent(
            self.view, self.queue_id, sender, recipients, event.size, reply, self.notes))
        self.reset()
        return reply

    def queue(self, sender: str, recipients: tuple[str, ...], size: int) -> None:
        """Keep the message as relayd's queue would, actions applied; fire ``queued``."""
        how = disposition(self.policy.transaction_actions())
        if how.discard:  # Postfix claims delivery and drops the message
            return
        recipients = tuple(how.recipients(list(recipients)))
        content = self.prepended + _DOT_STUFFING.sub(b"", b"".join(self.chunks))
        self.harness.queued.append(QueuedMessage(self.queue_id, sender, recipients, content,
                                                 how.hold, how.filter))
        self.harness.registry.fire(HOOK_QUEUED, QueuedEvent(
            self.view, self.queue_id, sender, recipients, len(self.prepended) + size,
            notes=self.notes))

    @property
    def view(self) -> SessionView:
        return self.policy.view


_SIMPLE_REPLIES = {
    ev.Noop: R250_OK, ev.Quit: R221_BYE, ev.Help: R214_HELP,
    ev.Expn: R500_UNRECOGNIZED, ev.StartTLS: R502_NOT_IMPLEMENTED, ev.Auth: R502_NOT_IMPLEMENTED,
}

__all__ = ["PluginHarness", "PluginRegistry", "QueuedMessage", "parse_replies",
           "HARNESS_MAIN_CF"]

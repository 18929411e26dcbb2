"""A test harness for plugin authors: scripted SMTP dialogues, no sockets.

::

    from relayd.testing import PluginHarness, parse_replies

    harness = PluginHarness(
        "smtpd_recipient_restrictions = permit_mynetworks, my_check arg,"
        " reject_unauth_destination", client_addr="192.0.2.1")
    out = harness.dialogue(b"EHLO client.example\\r\\nMAIL FROM:<a@example.org>\\r\\n"
                           b"RCPT TO:<b@relay.example>\\r\\nQUIT\\r\\n")
    assert parse_replies(out)[3] == ...          # greeting, EHLO, MAIL, RCPT, QUIT

The harness drives relayd's own SMTP dialogue
(:class:`relayd.edge.dialogue.SmtpDialogue`, the object the real session
driver drives over a socket) with relayd's protocol core and the per-session
policy (:meth:`Restrictions.session`, a
:class:`~relayd.pipeline.policy.SessionPolicy`: client, helo, sender,
recipient, data and end-of-data restrictions, smtpd_delay_reject, a
connect-time rejection that replaces the greeting) with every installed
plugin, plus the ``register`` functions given in ``plugins`` (a plugin under
development need not be installed). So it answers commands exactly as relayd
does, error and junk-command limits included; it fires the ``connect``,
``data-end`` and ``queued`` hooks in the calling greenlet, and keeps each
accepted message in :attr:`PluginHarness.queued` instead of writing a queue,
with the actions of the restriction lists applied: PREPEND headers in its
content, HOLD as ``hold``, REDIRECT and BCC in its recipients, FILTER as
``filter``; a DISCARDed message is answered 250 but not kept. Not run: TLS,
AUTH, cleanup (Received header, address rewriting, hop count), header/body
checks, timeouts, and the delay of error replies (smtpd_error_sleep_time).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable, Iterable

from relayd.cleanup.disposition import disposition, prepended_headers
from relayd.cleanup.message import Queued
from relayd.config import load_config
from relayd.edge.dialogue import CLOSE, NEED_DATA, DialogueSettings, SmtpDialogue
from relayd.pipeline.context import SessionView
from relayd.pipeline.hooks import HookRegistry
from relayd.pipeline.registry import ENTRY_POINT_GROUP, CheckRegistry
from relayd.pipeline.restrictions import Restrictions
from relayd.smtp.replies import Reply
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
        return _run(self, script)

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


class _Queue:
    """The harness's stand-in for the queue store: always room, its own queue ids."""

    def __init__(self, harness: PluginHarness) -> None:
        self.has_room = lambda: True
        self.new_queue_id = harness.new_queue_id


class _Cleanup:
    """The harness's stand-in for cleanup: keeps messages in ``harness.queued``."""

    def __init__(self, harness: PluginHarness) -> None:
        self.harness = harness

    def open(self, *, queue_id, sender, params, recipients, client_name, client_addr, helo,
             protocol, actions, tls_comment=(), sasl_username="") -> "_Message":
        # As relayd: PREPENDs known at DATA are written; later ones come too late.
        return _Message(self.harness, queue_id, sender, recipients, prepended_headers(actions))


class _Message:
    """One message: its chunks, then at the commit a :class:`QueuedMessage`."""

    def __init__(self, harness, queue_id, sender, recipients, prepended: bytes) -> None:
        self.harness, self.queue_id, self.sender = harness, queue_id, sender
        self.recipients, self.prepended = recipients, prepended
        self.chunks: list[bytes] = []
        self.size = 0

    def feed(self, data: bytes, checked: bool = False) -> None:
        self.chunks.append(data)

    def end(self, size: int) -> None:
        self.size = len(self.prepended) + size
        return None

    def commit(self, actions) -> Queued:
        """Keep the message as relayd's queue would, actions applied."""
        how = disposition(actions)
        if how.discard:  # Postfix claims delivery and drops the message
            return Queued(self.queue_id, discarded=True)
        recipients = tuple(how.recipients(list(self.recipients)))
        content = self.prepended + _DOT_STUFFING.sub(b"", b"".join(self.chunks))
        self.harness.queued.append(QueuedMessage(self.queue_id, self.sender, recipients, content,
                                                 how.hold, how.filter))
        return Queued(self.queue_id, self.sender, recipients, self.size)

    def abort(self) -> None:
        self.chunks = []


def _run(harness: PluginHarness, script: bytes) -> bytes:
    """One client connection of a harness: the dialogue, no I/O."""
    config = harness.config
    notes: dict = {}
    policy = harness.restrictions.session(
        SessionView(harness.client_addr, harness.client_name), notes)
    settings = DialogueSettings.from_config(config)
    dialogue = SmtpDialogue(
        settings, ServerSession(**settings.core_options(config)), policy,
        cleanup=_Cleanup(harness), queue=_Queue(harness), hooks=harness.registry,
        client_name=harness.client_name, client_addr=harness.client_addr, notes=notes)
    dialogue.connect()
    dialogue.greet()
    dialogue.receive_data(script)
    dialogue.receive_data(b"")
    try:
        step = None
        while step is not CLOSE and step is not NEED_DATA:   # NEED_DATA: nothing more to read
            step = dialogue.next_step()     # a delay (smtpd_error_sleep_time) is not waited for
    except ProtocolError as exc:
        return dialogue.protocol_error(exc)
    finally:
        dialogue.finish()
    return dialogue.take_output()


__all__ = ["PluginHarness", "PluginRegistry", "QueuedMessage", "parse_replies",
           "HARNESS_MAIN_CF"]

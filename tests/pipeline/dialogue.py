"""Scripted dialogues without sockets: relayd's own SMTP dialogue
(relayd.edge.dialogue.SmtpDialogue, what the session driver runs) with a
SessionPolicy, and a cleanup that keeps each accepted message's restriction
actions instead of queueing it, so tests read the replies a client would see.
"""
from relayd.cleanup.message import Queued
from relayd.config import load_config
from relayd.edge.dialogue import CLOSE, NEED_DATA, DialogueSettings, SmtpDialogue
from relayd.pipeline.context import SessionView
from relayd.pipeline.hooks import HookRegistry
from relayd.pipeline.restrictions import Restrictions
from relayd.smtp.server import ServerSession

# Every test configuration starts from these: no local recipient table to build.
BASE = "mydestination = local.example\nrelay_domains = example.com, relay.example\n" \
       "mynetworks = 192.0.2.0/24\nlocal_recipient_maps =\nmyorigin = local.example\n" \
       "myhostname = relay.test\nsmtpd_banner = $myhostname ESMTP\n"


def restrictions(main_cf: str = "") -> Restrictions:
    """Restrictions of BASE plus ``main_cf``."""
    return Restrictions(load_config(main_cf=BASE + main_cf))


class Dialogue:
    """One client session; :meth:`say` returns the reply text to one command.
    ``queued`` lists the restriction actions of each accepted message."""

    def __init__(self, rules: Restrictions, addr: str = "198.51.100.7", name: str = "unknown"):
        self.queued = []
        self.policy = rules.session(SessionView(addr, name, 40000))
        settings = DialogueSettings.from_config(rules.config)
        self.dialogue = SmtpDialogue(
            settings, ServerSession(**settings.core_options(rules.config)), self.policy,
            cleanup=self, queue=self, hooks=HookRegistry(), client_name=name, client_addr=addr)
        self.core = self.dialogue.core
        self.dialogue.greet()
        self.greeting = self.dialogue.take_output().decode().rstrip("\r\n")

    def say(self, *lines: str) -> str:
        """Send ``lines`` (pipelined) and return the replies, one per line."""
        self.dialogue.receive_data("".join(line + "\r\n" for line in lines).encode())
        step = None
        while step is not NEED_DATA and step is not CLOSE:
            step = self.dialogue.next_step()
        return self.dialogue.take_output().decode().rstrip("\r\n").replace("\r\n", "\n")

    def mail(self, sender: str = "a@sender.example", *recipients: str) -> list[str]:
        """EHLO (if needed), MAIL and RCPTs; the RCPT replies."""
        if not self.policy.view.helo_name:
            self.say("EHLO client.example")
        if self.core.sender is not None:
            self.say("RSET")
        self.say(f"MAIL FROM:<{sender}>")
        return [self.say(f"RCPT TO:<{r}>") for r in recipients]

    def message(self) -> str:
        """DATA with a one-line message; the reply to its end."""
        reply = self.say("DATA")
        if not reply.startswith("354"):
            return reply
        return self.say("Subject: test", "", "hello", ".")

    # -- the queue and cleanup the dialogue talks to ------------------------------------

    def has_room(self) -> bool:
        return True

    def new_queue_id(self) -> str:
        return f"QID{len(self.queued) + 1}"

    def open(self, *, queue_id, actions, **message) -> "_Message":
        return _Message(self, queue_id)


class _Message:
    def __init__(self, dialogue: Dialogue, queue_id: str):
        self.dialogue, self.queue_id = dialogue, queue_id

    def feed(self, data: bytes, checked: bool = False) -> None:
        pass

    def end(self, size: int) -> None:
        return None

    def commit(self, actions) -> Queued:
        self.dialogue.queued.append(actions)
        return Queued(self.queue_id)

    def abort(self) -> None:
        pass

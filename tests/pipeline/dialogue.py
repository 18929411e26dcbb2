"""A tiny no-socket SMTP driver: the protocol core plus a SessionPolicy.

It does what relayd/edge/session.py does with the policy (one call per
event), so tests can run scripted dialogues and read the replies a client
would see.
"""
from relayd.config import load_config
from relayd.pipeline.context import SessionView
from relayd.pipeline.restrictions import Restrictions
from relayd.smtp import events as ev
from relayd.smtp.replies import (R221_BYE, R250_HELO, R250_OK, R250_QUEUED, R250_RECIPIENT_OK,
                                 R250_SENDER_OK, R354_START_DATA)
from relayd.smtp.server import ServerSession

# Every test configuration starts from these: no local recipient table to build.
BASE = "mydestination = local.example\nrelay_domains = example.com, relay.example\n" \
       "mynetworks = 192.0.2.0/24\nlocal_recipient_maps =\nmyorigin = local.example\n"


def restrictions(main_cf: str = "") -> Restrictions:
    """Restrictions of BASE plus ``main_cf``."""
    return Restrictions(load_config(main_cf=BASE + main_cf))


class Dialogue:
    """One client session; :meth:`say` returns the reply text to one command."""

    def __init__(self, rules: Restrictions, addr: str = "198.51.100.7", name: str = "unknown"):
        self.core = ServerSession(hostname="relay.test")
        self.policy = rules.session(SessionView(addr, name, 40000))
        denied = self.policy.on_connect()
        self.greeting = str(denied) if denied else "220 relay.test ESMTP"
        self.queued = []

    def say(self, *lines: str) -> str:
        """Send ``lines`` (pipelined) and return the replies, one per line."""
        self.core.receive_data("".join(line + "\r\n" for line in lines).encode())
        out = []
        while (event := self.core.next_event()) is not ev.NEED_DATA:
            if type(event) is ev.ConnectionClosed:
                break
            if type(event) is ev.DataChunk:
                continue
            out.append(self.core.send(self._answer(event)).decode())
        return "".join(out).rstrip("\r\n").replace("\r\n", "\n")

    def _answer(self, event):
        policy = self.policy
        if policy.access_denied is not None and type(event) is not ev.Quit:
            return policy.access_denied
        if type(event) is ev.Helo:
            return policy.on_helo(event.name, event.extended) or (
                self.core.ehlo_reply() if event.extended else R250_HELO.format("relay.test"))
        if type(event) is ev.Mail:
            return policy.on_mail(event.sender) or R250_SENDER_OK
        if type(event) is ev.Rcpt:
            return policy.on_rcpt(event.recipient) or R250_RECIPIENT_OK
        if type(event) is ev.Data:
            return policy.on_data() or R354_START_DATA
        if type(event) is ev.DataEnd:
            reply = policy.on_end_of_data()
            if reply is None:
                self.queued.append(policy.transaction_actions())
                reply = R250_QUEUED.format(f"QID{len(self.queued)}")
            policy.reset_transaction()
            return reply
        if type(event) is ev.Rset:
            policy.reset_transaction()
            return R250_OK
        if type(event) is ev.Quit:
            return R221_BYE
        if type(event) is ev.BadCommand:
            return event.reply
        raise AssertionError(f"unexpected event {event!r}")

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

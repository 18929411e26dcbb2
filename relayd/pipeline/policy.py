"""One SMTP session's policy: the restriction lists applied event by event.

The session driver calls exactly one method per SMTP event and sends the
reply it gets back (None: go on with the usual positive reply):

==================  =================================================  ==========
driver event        what runs (Postfix smtpd_check_*)                  returns
==================  =================================================  ==========
connection          client list, unless smtpd_delay_reject             on_connect
HELO/EHLO           helo list, unless smtpd_delay_reject               on_helo
MAIL FROM           sender list, unless smtpd_delay_reject             on_mail
RCPT TO             (client, helo, sender if delayed), relay,          on_rcpt
                    recipient, implicit reject_unlisted_recipient
DATA                data list                                          on_data
end of data         end-of-data list                                   on_end_of_data
RSET, new MAIL      transaction state cleared                          reset_transaction
==================  =================================================  ==========

A connect-time rejection (smtpd_delay_reject = no) replaces the greeting;
afterwards :attr:`SessionPolicy.access_denied` is the reply for every
command but QUIT. The policy logs its own events in Postfix's form
(``NOQUEUE: reject: RCPT from host[addr]: 554 ...; from=<a> to=<b>
proto=ESMTP helo=<h>``; also warn, info, hold, discard, filter, redirect,
bcc, reject_warning) on the "relayd.smtpd" logger.
"""
from __future__ import annotations

import logging

from relayd.maillog import whatsup
from relayd.metrics import METER
from relayd.pipeline.context import CheckContext, SessionView
from relayd.pipeline.dispatcher import Run
from relayd.pipeline.verdicts import Defer, Filter, Redirect, Reject, Verdict
from relayd.smtp.replies import R503_ACCESS_DENIED, Reply

log = logging.getLogger("relayd.smtpd")

# Checks that, once run for a recipient/sender, make the implicit one unnecessary.
_UNLISTED_RECIPIENT = ("reject_unlisted_recipient", "check_recipient_maps")
_UNLISTED_SENDER = ("reject_unlisted_sender",)
# What reset_transaction() clears (each is replaced, never changed in place).
_TRANSACTION = ("sender", "recipient", "recipients", "_last_recipient", "_discard", "_actions",
                "_ran")


class SessionPolicy:
    """The restriction state of one SMTP session (see the module doc).

    ``view`` is what the checks see of the client; :meth:`update` changes it
    (after STARTTLS, AUTH, or when illegal pipelining is seen). ``queue_id``
    is set by the driver once it has one, for the log lines.
    """

    def __init__(self, restrictions, view: SessionView, notes: dict | None = None):
        self.restrictions = restrictions
        self.view = view
        self.notes = notes if notes is not None else {}
        self.access_denied: Reply | None = None
        self.log_rejects = True
        self._where = "CONNECT"
        self._permit_deferred: dict[str, Reply | None] = {}  # defer_if_permit of earlier stages
        self.reset_transaction()

    # -- driver API ----------------------------------------------------------------------

    def update(self, **fields) -> None:
        """Change fields of the session view, e.g. ``update(pipelined_early=True)``."""
        self.view = self.view.replace(**fields)

    def reset_transaction(self) -> None:
        """Forget the transaction (RSET, HELO, after end of data or a rejected MAIL)."""
        self.sender: str | None = None
        self.recipient: str | None = None
        self.recipients = 0
        self.queue_id = ""   # the next transaction's rejects are NOQUEUE's, as smtpd's mail_reset()
        self._last_recipient: str | None = None
        self._discard = False
        self._actions: list[Verdict] = []
        self._ran: set[str] = set()  # checks run for the current command
        self._permit_deferred.pop("sender", None)

    def on_connect(self) -> Reply | None:
        """Client restrictions at connect time (only with smtpd_delay_reject = no)."""
        self._where = "CONNECT"
        if self.restrictions.delay_reject:
            return None
        reply = self._client_stage()
        if reply is not None:
            self.access_denied = reply if reply.code in (421, 521) else \
                R503_ACCESS_DENIED.format(self._namaddr())
        return self._logged(reply)

    def on_helo(self, name: str, extended: bool = False) -> Reply | None:
        """HELO (``extended`` False) or EHLO ``name``: helo restrictions unless delayed."""
        self._where = "EHLO" if extended else "HELO"
        # What a rejected HELO must leave as it was; delayed, nothing runs now to reject it.
        delayed = self.restrictions.delay_reject
        before = None if delayed else (self.view, {f: getattr(self, f) for f in _TRANSACTION},
                                       self._permit_deferred.get("sender"))
        self.update(helo_name=name, protocol="ESMTP" if extended else "SMTP")
        self.reset_transaction()
        if delayed:
            return None
        reply = self._logged(self._helo_stage())
        if reply is not None:
            # A rejected HELO changes nothing: it neither names the client nor ends
            # the transaction in progress (smtpd.c helo_cmd returns before mail_reset).
            self.view, transaction, permit_deferred = before
            for field, value in transaction.items():
                setattr(self, field, value)
            if permit_deferred is not None:
                self._permit_deferred["sender"] = permit_deferred
        return reply

    def on_mail(self, sender: str) -> Reply | None:
        """MAIL FROM (``""`` is the null sender): sender restrictions unless delayed."""
        self._where = "MAIL"
        self.reset_transaction()
        self.sender = sender
        self._ran = set()
        if self.restrictions.delay_reject:
            return None
        reply = self._logged(self._sender_stage())
        if reply is not None:
            self.reset_transaction()
        return reply

    def on_rcpt(self, recipient: str) -> Reply | None:
        """RCPT TO: everything that decides whether ``recipient`` is accepted."""
        self._where = "RCPT"
        if recipient.lower() == "postmaster":
            # RFC 5321 4.5.1: "postmaster" is always accepted (smtpd_check_rcpt).
            return self._accepted(recipient)
        self.recipient = recipient
        self._ran = set()
        reply = self._logged(self._rcpt_stages(recipient))
        if reply is None:
            return self._accepted(recipient)
        self.recipient = self._last_recipient
        return reply

    def on_data(self) -> Reply | None:
        """DATA: smtpd_data_restrictions."""
        self._where = "DATA"
        return self._logged(self._message_stage("data"))

    def on_end_of_data(self) -> Reply | None:
        """End of data: smtpd_end_of_data_restrictions."""
        self._where = "END-OF-MESSAGE"
        return self._logged(self._message_stage("end_of_data"))

    def refuse(self, reply: Reply) -> Reply:
        """Log ``reply``, a refusal the driver decided itself at the current
        command (MAIL FROM's 452 4.3.1 when the queue file system is short of
        space, Postfix's smtpd_check_queue), as the lists' refusals are logged;
        return it."""
        return self._logged(reply)

    def transaction_actions(self) -> list[Verdict]:
        """HOLD, DISCARD, PREPEND, REDIRECT, FILTER and BCC verdicts of this
        transaction, for the queue: each once, in order; of several FILTER or
        REDIRECT actions only the last one counts."""
        last = {kind: max(i for i, a in enumerate(self._actions) if type(a) is kind)
                for kind in (Filter, Redirect) if any(type(a) is kind for a in self._actions)}
        seen, actions = set(), []
        for i, action in enumerate(self._actions):
            if action in seen or last.get(type(action), i) != i:
                continue
            seen.add(action)
            actions.append(action)
        return actions

    # -- stages --------------------------------------------------------------------------

    # An empty list changes nothing but passes on a pending DEFER_IF_PERMIT; at
    # every RCPT (delayed rejects) that shortcut saves building a Run for nothing.

    def _client_stage(self) -> Reply | None:
        if not self.restrictions.lists["client"]:
            self._permit_deferred["client"] = None
            return None
        run, verdict = self._run("client", ("client",), None)
        self._permit_deferred["client"] = run.defer_if_permit
        return _refusal(verdict)

    def _helo_stage(self) -> Reply | None:
        if not self.restrictions.lists["helo"]:
            self._permit_deferred["helo"] = self._permit_deferred.get("client")
            return None
        run, verdict = self._run("helo", ("helo",), self._permit_deferred.get("client"))
        self._permit_deferred["helo"] = run.defer_if_permit
        return _refusal(verdict)

    def _sender_stage(self) -> Reply | None:
        carried = self._permit_deferred.get("helo") or self._permit_deferred.get("client")
        if not self.restrictions.lists["sender"] and \
                "reject_unlisted_sender" not in self.restrictions.implicit:
            self._permit_deferred["sender"] = carried
            return None
        run, verdict = self._run("sender", ("sender",), carried)
        self._permit_deferred["sender"] = run.defer_if_permit
        reply = _refusal(verdict)
        if reply is None and self.sender and not self._ran.intersection(_UNLISTED_SENDER):
            reply = self._implicit(run, "reject_unlisted_sender", "sender")
        return reply

    def _rcpt_stages(self, recipient: str) -> Reply | None:
        if self.restrictions.delay_reject:
            delayed = [self._client_stage]
            if self.view.helo_name:
                delayed.append(self._helo_stage)
            if self.sender is not None:
                delayed.append(self._sender_stage)
            for stage in delayed:
                reply = stage()
                if reply is not None:
                    return reply
        run, verdict = self._run("recipient", ("relay", "recipient"),
                                 self._permit_deferred.get("sender"))
        reply = _refusal(verdict) or _refusal(run.permit_deferred())
        if reply is None and not self._ran.intersection(_UNLISTED_RECIPIENT):
            reply = self._implicit(run, "reject_unlisted_recipient", "recipient")
        return reply

    def _message_stage(self, stage: str) -> Reply | None:
        if not self.restrictions.lists[stage]:
            return None
        run, verdict = self._run(stage, (stage,), None)
        return _refusal(verdict) or _refusal(run.permit_deferred())

    def _implicit(self, run: Run, name: str, stage: str) -> Reply | None:
        """smtpd_reject_unlisted_*: the named check, when enabled and provided
        (never after DISCARD: the run evaluates nothing then)."""
        elements = self.restrictions.implicit.get(name)
        if elements is None:
            return None
        return _refusal(run.evaluate(elements, self._context(stage)))

    def _run(self, stage: str, lists: tuple[str, ...], permit_deferred: Reply | None):
        """Evaluate the lists of one Postfix smtpd_check_* call with one Run."""
        r = self.restrictions
        run = Run(classes=r.classes, compile_value=r.compile_value, report=self._report,
                  defer_if_permit=permit_deferred, discard=self._discard,
                  in_transaction=self.sender is not None, after_data=stage == "end_of_data",
                  soft_bounce=r.soft_bounce)
        verdict = None
        for name in lists:
            if r.lists[name]:
                verdict = run.evaluate(r.lists[name], self._context(name))
                if isinstance(verdict, (Reject, Defer)):
                    break
        self._discard = run.discard
        self._actions += run.actions
        self._ran |= run.ran
        return run, verdict

    # -- helpers -------------------------------------------------------------------------

    def _context(self, stage: str) -> CheckContext:
        recipient = self.recipient
        if stage in ("data", "end_of_data") and self.recipients != 1:
            recipient = None  # a message-wide check names no single recipient
        return CheckContext(stage, self.view, self.restrictions.config, self.sender, recipient,
                            (), self.notes)

    def _accepted(self, recipient: str) -> None:
        self.recipients += 1
        self.recipient = self._last_recipient = recipient
        return None

    def _namaddr(self) -> str:
        return f"{self.view.client_name}[{self.view.client_addr}]"

    def _logged(self, reply: Reply | None) -> Reply | None:
        if reply is not None and self.log_rejects:
            self._report("reject", str(reply))
            if not self.queue_id and self._where == "RCPT":  # postfix_exporter's count
                METER.inc("smtpd_messages_rejected", str(reply.code))
        return reply

    def _report(self, kind: str, text: str) -> None:
        """Postfix's log_whatsup: ``QID: kind: WHERE from host[addr]: text; from=<> ...``."""
        log.info("%s", whatsup(self.queue_id or "NOQUEUE", kind, self._where, self._namaddr(), text,
                               sender=self.sender, recipient=self.recipient,
                               protocol=self.view.protocol, helo=self.view.helo_name or None))


def _refusal(verdict: Verdict | None) -> Reply | None:
    """The reply of a rejecting or deferring verdict; None for anything else."""
    return verdict.reply if isinstance(verdict, (Reject, Defer)) else None


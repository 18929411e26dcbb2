"""Delivery status notifications (RFC 3464), worded like Postfix's bounce(8).

A DSN is a multipart/report; report-type=delivery-status with three parts:
the human-readable notification (Postfix's built-in template), the
machine-readable message/delivery-status, and the returned message's
headers (text/rfc822-headers). It is composed with the standard library's
email package and returned in SMTP wire form (CRLF, dot-stuffed) ready to be
committed to the queue as a new message from the null sender.

Recipient outcomes. Each recipient's :class:`relayd.queue.outcome.Outcome`
gives the fields: its dsn for Status:, the remote MTA and its reply (when a
server's reply decided) for Remote-MTA: and Diagnostic-Code: smtp;,
otherwise its reason as Diagnostic-Code: X-Postfix;. A recipient with no
outcome (or none with a status) gets 5.0.0 (4.0.0 in a delay notice).

What goes in comes from outside: addresses a client chose, replies a next
hop wrote, the returned message's headers. Nothing of it may start a header
line or break the MIME structure, so every string that goes into a header
or a delivery-status field passes :func:`_field` (Postfix's printable(),
ASCII only, as a DSN without SMTPUTF8 must be), the notification's lines
:func:`_text` (printable UTF-8), and the returned headers keep only their
folding TABs besides printable text. The email package neither folds nor
re-encodes headers here (it would split a value at U+2028 and fold a long
Diagnostic-Code right after its colon); instead every line longer than 998
octets is broken by CRLF SPACE, as smtp_line_length_limit does.
"""
from __future__ import annotations

import dataclasses
from email import policy
from email.generator import BytesGenerator
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from io import BytesIO

from relayd.queue.outcome import DEFERRED, Outcome
from relayd.smtp.text import break_long_lines, printable

__all__ = ["build_dsn", "FAILED", "DELAYED"]

FAILED, DELAYED = "failed", "delayed"

_SUBJECTS = {FAILED: "Undelivered Mail Returned to Sender",
             DELAYED: "Delayed Mail (still being retried)"}

# Postfix's built-in templates (src/bounce/bounce_templates.c).
_FAILED_BODY = """\
This is the mail system at host {myhostname}.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system
"""
_DELAYED_BODY = """\
This is the mail system at host {myhostname}.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered yet. It will be retried until
it is too old to stay in the queue.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system
"""

_NONE = Outcome(DEFERRED, "", "")   # a recipient no attempt has reached

#: SMTP line length (RFC 5321 4.5.3.1.6: 1,000 octets with the CRLF).
LINE_LIMIT = 998
_WIRE_POLICY = policy.SMTP.clone(max_line_length=None, refold_source="none")


def _field(text: str) -> str:
    """The one way into a DSN header or field: one printable ASCII line."""
    return printable(text, utf8=False)


def _text(text: str) -> str:
    """One line of the notification text: printable, UTF-8 kept."""
    return printable(text)


def _outcome(rcpt, reason_kind: str) -> Outcome:
    """``rcpt``'s outcome, with the notice's default status where it has none."""
    outcome = rcpt.outcome or _NONE
    if outcome.dsn:
        return outcome
    return dataclasses.replace(outcome, dsn="5.0.0" if reason_kind == FAILED else "4.0.0")


def build_dsn(message, recipients: list[int], content: bytes, *, myhostname: str,
              reason_kind: str = FAILED, postmaster: str = "MAILER-DAEMON") -> bytes:
    """The wire-form DSN telling ``message``'s sender about ``recipients``
    (indexes into its envelope); ``content`` is the queued wire form of the
    original, of which only the headers are returned."""
    env = message.envelope
    myhostname = _field(myhostname)
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"{_field(postmaster)}@{myhostname} (Mail Delivery System)"
    report["To"] = _field(env.sender)
    report["Subject"] = _SUBJECTS[reason_kind]
    report["Auto-Submitted"] = "auto-replied"
    report["Date"] = formatdate(localtime=True)
    report["Message-Id"] = make_msgid(domain=myhostname)
    report.preamble = "This is a MIME-encapsulated message."

    rcpts = [env.recipients[i] for i in recipients]
    body = (_FAILED_BODY if reason_kind == FAILED else _DELAYED_BODY).format(myhostname=myhostname)
    body += "\n" + "\n".join(_text(f"<{r.address}>: {_outcome(r, reason_kind).reason}")
                              for r in rcpts) + "\n"
    notification = MIMEText(body, "plain", "utf-8" if not body.isascii() else "us-ascii")
    notification["Content-Description"] = "Notification"
    report.attach(notification)
    report.attach(_delivery_status(message, rcpts, myhostname, reason_kind))
    headers = MIMEText(_original_headers(content), "rfc822-headers")
    headers["Content-Description"] = "Undelivered Message Headers"
    report.attach(headers)
    return _wire_form(report)


def _delivery_status(message, rcpts, myhostname: str, reason_kind: str) -> Message:
    env = message.envelope
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {myhostname}"
    per_message["X-Postfix-Queue-ID"] = _field(message.queue_id)
    per_message["X-Postfix-Sender"] = f"rfc822; {_field(env.sender)}"
    per_message["Arrival-Date"] = formatdate(env.arrival_time, localtime=True)
    blocks = [per_message]
    for rcpt in rcpts:
        outcome = _outcome(rcpt, reason_kind)
        block = Message()
        block["Final-Recipient"] = f"rfc822; {_field(rcpt.address)}"
        block["Original-Recipient"] = f"rfc822; {_field(rcpt.original or rcpt.address)}"
        block["Action"] = reason_kind
        block["Status"] = _field(outcome.dsn)
        if outcome.remote:
            block["Remote-MTA"] = f"dns; {_field(outcome.remote)}"
            block["Diagnostic-Code"] = f"smtp; {_field(outcome.reply)}"
        else:
            block["Diagnostic-Code"] = f"X-Postfix; {_field(outcome.reason)}"
        blocks.append(block)
    status = Message()
    status.set_type("message/delivery-status")
    del status["MIME-Version"]
    status["Content-Description"] = "Delivery report"
    status.set_payload(blocks)
    return status


def _original_headers(content: bytes) -> str:
    """The header section of a wire-form message, dot-stuffing undone,
    each line printable but for the TABs that fold headers."""
    end = 0 if content.startswith(b"\r\n") else content.find(b"\r\n\r\n")
    head = content if end < 0 else content[:end + 2 if end else 0]
    lines = [line[1:] if line.startswith(b".") else line for line in head.split(b"\r\n")]
    text = b"\n".join(lines).decode("utf-8", "replace").rstrip("\n")
    return "".join("\t".join(map(_text, line.split("\t"))) + "\n" for line in text.split("\n"))


def _wire_form(report: Message) -> bytes:
    """CRLF lines, dot-stuffed, none over 998 octets, ending with CRLF:
    what the queue stores."""
    out = BytesIO()
    BytesGenerator(out, policy=_WIRE_POLICY).flatten(report)
    lines = out.getvalue().split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    wire = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return break_long_lines(wire, LINE_LIMIT)

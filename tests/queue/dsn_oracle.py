"""The structural invariant of every DSN relayd.queue.bounce builds: the
oracle of the builder's tests and of any fuzz harness that feeds it.

:func:`check_dsn` raises AssertionError unless the DSN is valid SMTP wire
form (CRLF lines only, no bare CR or LF, no NUL, no line over 998 octets,
every line starting with "." stuffed) and, parsed by the standard library,
a multipart/report of exactly three parts whose header and field names are
exactly the expected ones: no input may add a header line or a part.
"""
from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

__all__ = ["check_dsn", "unstuff"]

TOP = ["Content-Type", "MIME-Version", "From", "To", "Subject", "Auto-Submitted", "Date",
       "Message-Id"]
TEXT_PART = ["Content-Type", "MIME-Version", "Content-Transfer-Encoding", "Content-Description"]
STATUS_PART = ["Content-Type", "Content-Description"]
PER_MESSAGE = ["Reporting-MTA", "X-Postfix-Queue-ID", "X-Postfix-Sender", "Arrival-Date"]
PER_RECIPIENT = ["Final-Recipient", "Original-Recipient", "Action", "Status", "Diagnostic-Code"]
PER_REMOTE_RECIPIENT = PER_RECIPIENT[:4] + ["Remote-MTA", "Diagnostic-Code"]
PARTS = ["text/plain", "message/delivery-status", "text/rfc822-headers"]


def unstuff(wire: bytes) -> bytes:
    """Wire form (CRLF lines, dot-stuffed) back to the message."""
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n"
                    for line in wire[:-2].split(b"\r\n"))


def check_wire_form(wire: bytes) -> None:
    """CRLF lines only, no NUL, none over 998 octets, dots stuffed, ends with CRLF."""
    assert wire.endswith(b"\r\n"), "does not end with CRLF"
    assert b"\0" not in wire, "NUL"
    for number, line in enumerate(wire[:-2].split(b"\r\n"), 1):
        assert b"\r" not in line and b"\n" not in line, f"bare CR or LF in line {number}: {line[:80]!r}"
        assert len(line) <= 998, f"line {number} has {len(line)} octets"
        assert not line.startswith(b".") or line.startswith(b".."), f"line {number} unstuffed"


def check_dsn(wire: bytes, recipients: int) -> EmailMessage:
    """Assert the invariant for a DSN about ``recipients`` recipients; the parsed report."""
    check_wire_form(wire)
    report = email.message_from_bytes(unstuff(wire), policy=email.policy.default)
    assert report.keys() == TOP, report.keys()
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = report.get_payload()
    assert [p.get_content_type() for p in parts] == PARTS
    assert not report.defects and not any(p.defects for p in parts), "MIME defects"
    text, status, headers = parts
    assert text.keys() == TEXT_PART and headers.keys() == TEXT_PART
    assert status.keys() == STATUS_PART
    per_message, *blocks = status.get_payload()
    assert per_message.keys() == PER_MESSAGE, per_message.keys()
    assert len(blocks) == recipients
    for block in blocks:
        assert block.keys() in (PER_RECIPIENT, PER_REMOTE_RECIPIENT), block.keys()
    return report

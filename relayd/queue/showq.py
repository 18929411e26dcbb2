"""The queue as Postfix's showq(8) reports it, and postqueue's two renderings.

:func:`showq_record` turns a queued message into the record showq sends
(Postfix's field names, the ones ``postqueue -j`` prints);
:func:`format_mailq` renders records as ``mailq`` / ``postqueue -p`` do
(showq_compat.c), :func:`format_json` as ``postqueue -j`` does
(showq_json.c). Sans-I/O: the daemon builds records, the commands print them.
"""
from __future__ import annotations

import json
import time

from relayd.queue.envelope import DEFERRED, PENDING
from relayd.queue.state import CORRUPT

_MARK = {"active": "*", "hold": "!"}
# showq_compat.c's short-queue-id formats.
_STRING_FORMAT = "{:<11s} {:>7s} {:<20s} {}"
_HEADINGS = _STRING_FORMAT.format("-Queue ID-", "--Size--", "----Arrival Time----",
                                  "-Sender/Recipient-------")
_RECIPIENT_INDENT = " " * 41
_REASON_WIDTH = 76


def showq_record(message) -> dict | None:
    """The showq record of a :class:`relayd.queue.state.QueuedMessage` (None for
    a corrupt one: Postfix's showq does not list the corrupt queue)."""
    if message.state == CORRUPT:
        return None
    env = message.envelope
    recipients = []
    for rcpt in env.recipients:
        if rcpt.status not in (PENDING, DEFERRED):
            continue
        entry = {"address": rcpt.address}
        if rcpt.status == DEFERRED and rcpt.outcome is not None and rcpt.outcome.reason:
            entry["delay_reason"] = rcpt.outcome.reason
        recipients.append(entry)
    return {"queue_name": message.state, "queue_id": message.queue_id,
            "arrival_time": int(env.arrival_time), "message_size": env.size,
            # showq names the null sender, in both renderings.
            "forced_expire": False, "sender": env.sender or "MAILER-DAEMON",
            "recipients": recipients}


def maildrop_record(name: str, st, sub) -> dict:
    """The showq record of a maildrop file (relayd.maildrop.listing): not queued
    yet, so its id is the file name and its size the file's."""
    return {"queue_name": "maildrop", "queue_id": name, "arrival_time": int(st.st_mtime),
            "message_size": st.st_size, "forced_expire": False,
            "sender": sub.sender or "MAILER-DAEMON",
            "recipients": [{"address": r} for r in sub.recipients]}


def format_mailq(records: list[dict]) -> str:
    """The listing of ``mailq`` / ``postqueue -p`` (records oldest first)."""
    if not records:
        return "Mail queue is empty\n"
    out = [_HEADINGS]
    total = 0
    for n, rec in enumerate(records):
        if n:
            out.append("")
        out += _message_lines(rec)
        total += rec["message_size"]
    count = len(records)
    out += ["", f"-- {total // 1024} Kbytes in {count} Request{'' if count == 1 else 's'}."]
    return "\n".join(out) + "\n"


def _message_lines(rec: dict) -> list[str]:
    qid = rec["queue_id"] + _MARK.get(rec["queue_name"], "") + ("#" if rec["forced_expire"] else "")
    # asctime() cut to 20 characters ("Fri Dec  4 15:01:48 "), as showq_compat's %20.20s.
    arrival = time.asctime(time.localtime(rec["arrival_time"]))[:20]
    lines = [f"{qid:<11s} {rec['message_size']:>7d} {arrival:>20s} {rec['sender']}"]
    shown = ""
    for rcpt in rec["recipients"]:
        reason = rcpt.get("delay_reason", "")
        if reason != shown:   # a reason line only where it changes, as showq_compat does
            shown = reason
            text = reason or "reason unavailable"
            lines.append(" " * max(0, _REASON_WIDTH - len(text)) + f"({text})")
        lines.append(_RECIPIENT_INDENT + rcpt["address"])
    return lines


def format_json(records: list[dict]) -> str:
    """``postqueue -j``: one JSON object a line, in showq_json.c's key order and spacing."""
    return "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)


def sort_records(records: list[dict]) -> list[dict]:
    """Oldest arrival first, ties by queue id (across the workers' answers)."""
    return sorted(records, key=lambda r: (r["arrival_time"], r["queue_id"]))


__all__ = ["showq_record", "maildrop_record", "format_mailq", "format_json",
           "sort_records"]

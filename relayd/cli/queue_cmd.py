"""``relayd mailq`` and ``relayd queue ...``: the queue as postqueue/postsuper show it.

    relayd [-c DIR] mailq                                  like mailq / postqueue -p
    relayd [-c DIR] queue hold|release|delete|requeue QUEUEID... | ALL
                                                           like postsuper -h/-H/-d/-r

They ask every running worker through its control socket; each answers for
the messages in its own queue.
"""
from __future__ import annotations

import json
import sys
import time

from relayd.control import MAX_REQUEST, request_all

EX_UNAVAILABLE = 69
EX_NOPERM = 77
# postsuper's words for what happened.
_DONE = {"hold": "Placed on hold", "release": "Released from hold", "delete": "Deleted",
         "requeue": "Requeued"}
_MARK = {"active": "*", "hold": "!"}


def mailq(queue_directory: str) -> int:
    try:
        answers = request_all(queue_directory, "list")
    except PermissionError as exc:
        print(f"relayd: fatal: {exc}", file=sys.stderr)
        return EX_NOPERM
    except OSError:
        print("relayd: fatal: Queue report unavailable - mail system is down", file=sys.stderr)
        return EX_UNAVAILABLE
    messages = sorted((m for a in answers for m in json.loads(a)), key=lambda m: m["arrival_time"])
    print(format_listing(messages), end="")
    return 0


def format_listing(messages: list[dict]) -> str:
    """The listing in Postfix's showq format."""
    if not messages:
        return "Mail queue is empty\n"
    out = ["-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"]
    for m in messages:
        arrival = time.strftime("%a %b %d %H:%M:%S", time.localtime(m["arrival_time"]))
        qid = m["queue_id"] + _MARK.get(m["state"], "")
        out.append(f"{qid:<11s} {m['size']:>8d} {arrival}  {m['sender'] or 'MAILER-DAEMON'}")
        if m["reason"] and m["state"] != "active":
            out.append(f"({m['reason']})")
        out += [" " * 41 + rcpt for rcpt in m["recipients"]]
        out.append("")
    kbytes = sum(m["size"] for m in messages) // 1024
    count = len(messages)
    out.append(f"-- {kbytes} Kbytes in {count} Request{'s' if count != 1 else ''}.")
    return "\n".join(out) + "\n"


def queue_operation(queue_directory: str, argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in _DONE:
        print("usage: relayd queue hold|release|delete|requeue QUEUEID...|ALL", file=sys.stderr)
        return 64
    command, ids = argv[0], argv[1:]
    answers = []
    try:
        for request in _requests(command, ids):
            answers += request_all(queue_directory, request)
    except PermissionError as exc:
        print(f"relayd: fatal: {exc}", file=sys.stderr)
        return EX_NOPERM
    except OSError:
        print("relayd: fatal: mail system is down", file=sys.stderr)
        return EX_UNAVAILABLE
    changed = sum(int(a) for a in answers if a.isdigit())
    print(f"relayd: {_DONE[command]}: {changed} message{'s' if changed != 1 else ''}",
          file=sys.stderr)
    return 0


def _requests(command: str, ids: list[str]) -> list[str]:
    """``command ID...`` requests, each within the control socket's size bound."""
    requests, line = [], command
    for qid in ids:
        if len(line) + 1 + len(qid) > MAX_REQUEST and line != command:
            requests.append(line)
            line = command
        line += " " + qid
    return requests + [line]

"""The queue commands' common ground: reading and changing the queue of a
running relayd through its workers' control sockets, or, with relayd down,
the queue directory itself.

    relayd [-c DIR] mailq                                  like mailq / postqueue -p
    relayd [-c DIR] queue hold|release|delete|requeue QUEUEID... | ALL
                                                           like postsuper -h/-H/-d/-r

A running relayd owns its queues (each worker's journal, under its
``queue.lock``), so a listing or a change is a request to every worker,
each answering for its own queue: a change is journaled by the process
that delivers the mail, never under its feet. When no worker answers and
the caller is root, the command takes the queues' locks itself (as
Postfix's postsuper works on a stopped system, and postqueue "accesses
the queue directly"), as the owner of the queue directory.
"""
from __future__ import annotations

import json
import os
import sys

from relayd import maildrop
from relayd.control import MAX_REQUEST, request_all
from relayd.queue.showq import format_mailq, maildrop_record, showq_record, sort_records
from relayd.queue.operations import apply_queue_op
from relayd.relay import WORKER_DIRECTORY

EX_UNAVAILABLE = 69
EX_NOPERM = 77
# postsuper's words for what happened: in all, and to each message.
DONE = {"hold": "Placed on hold", "release": "Released from hold", "delete": "Deleted",
        "requeue": "Requeued"}
EACH = {"hold": "placed on hold", "release": "released from hold", "delete": "removed",
        "requeue": "requeued"}


class MailSystemDown(OSError):
    """No worker answers and the queue cannot be read directly."""


def queue_records(queue_directory: str, prog: str = "relayd") -> list[dict]:
    """Every queued message's showq record, oldest first, with the maildrop's
    files not picked up yet (PermissionError, MailSystemDown)."""
    waiting = [maildrop_record(*entry)
               for entry in maildrop.listing(maildrop.directory(queue_directory))]
    try:
        answers = request_all(queue_directory, "list")
        return sort_records(waiting + [r for a in answers for r in json.loads(a)])
    except PermissionError:
        raise
    except OSError:
        pass
    stores = _offline_stores(queue_directory, prog, "Queue report unavailable")
    try:
        return sort_records(waiting + [r for s in stores for r in map(showq_record, s.messages())
                                       if r])
    finally:
        for store in stores:
            store.close()


def operate(queue_directory: str, command: str, ids: list[str], queues=(),
            prog: str = "relayd") -> list[str]:
    """hold/release/delete/requeue ``ids`` (or ["ALL"]) in ``queues`` (all when
    empty); the ids of the messages changed (PermissionError, MailSystemDown)."""
    words = ids + ([f"queues={','.join(sorted(queues))}"] if queues else [])
    try:
        return [qid for request in _requests(command, words)
                for answer in request_all(queue_directory, request) for qid in answer.split()]
    except PermissionError:
        raise
    except OSError:
        pass
    stores = _offline_stores(queue_directory, prog, "mail system is down")
    try:
        return apply_queue_op(stores, command, ids, queues)
    finally:
        for store in stores:
            store.close()


def _offline_stores(queue_directory: str, prog: str, down: str) -> list:
    """The queues opened (locked) by this process, relayd being down; only for
    root, who then acts as the queue directory's owner so that what it writes
    stays the mail system's. MailSystemDown when that is not possible."""
    from relayd.queue.lock import QueueLocked
    from relayd.queue.store import QueueStore
    if os.geteuid() != 0 or not os.path.isdir(queue_directory):
        raise MailSystemDown(f"{down} - mail system is down")
    print(f"{prog}: warning: Mail system is down -- accessing queue directly", file=sys.stderr)
    _become_owner(queue_directory)
    directories = [queue_directory] + sorted(
        os.path.join(queue_directory, n) for n in os.listdir(queue_directory)
        if WORKER_DIRECTORY.match(n))
    stores = []
    try:
        for directory in directories:
            store = QueueStore(directory)
            store.open()
            stores.append(store)
    except QueueLocked:   # relayd started meanwhile, or is stuck without its sockets
        for store in stores:
            store.close()
        raise MailSystemDown(f"{down} - mail system is down") from None
    return stores


def _become_owner(directory: str) -> None:
    st = os.stat(directory)
    if st.st_uid != 0:
        os.setgroups([])
        os.setgid(st.st_gid)
        os.setuid(st.st_uid)


def _requests(command: str, words: list[str]) -> list[str]:
    """``command WORD...`` requests, each within the control socket's size bound
    (a ``queues=`` word goes into every one)."""
    tail = [w for w in words if w.startswith("queues=")]
    suffix = "".join(" " + w for w in tail)
    requests, line = [], command
    for word in (w for w in words if not w.startswith("queues=")):
        if len(line) + 1 + len(word) + len(suffix) > MAX_REQUEST and line != command:
            requests.append(line + suffix)
            line = command
        line += " " + word
    return requests + [line + suffix]


def fail(prog: str, exc: OSError) -> int:
    """Report why the queue is out of reach, as Postfix's commands do; the exit status."""
    print(f"{prog}: fatal: {exc}", file=sys.stderr)
    return EX_NOPERM if isinstance(exc, PermissionError) else EX_UNAVAILABLE


def mailq(queue_directory: str) -> int:
    """``relayd mailq``."""
    try:
        records = queue_records(queue_directory)
    except OSError as exc:
        return fail("relayd", exc)
    sys.stdout.write(format_mailq(records))
    return 0


def queue_operation(queue_directory: str, argv: list[str]) -> int:
    """``relayd queue hold|release|delete|requeue QUEUEID...|ALL``."""
    if len(argv) < 2 or argv[0] not in DONE:
        print("usage: relayd queue hold|release|delete|requeue QUEUEID...|ALL", file=sys.stderr)
        return 64
    try:
        changed = operate(queue_directory, argv[0], argv[1:])
    except OSError as exc:
        return fail("relayd", exc)
    report("relayd", argv[0], changed)
    return 0


def report(prog: str, command: str, changed: list[str]) -> None:
    """postsuper's lines on stderr: one for each message changed, then the count
    (nothing when nothing changed, as postsuper)."""
    for qid in changed:
        print(f"{prog}: {qid}: {EACH[command]}", file=sys.stderr)
    if changed:
        count = len(changed)
        print(f"{prog}: {DONE[command]}: {count} message{'s' if count != 1 else ''}",
              file=sys.stderr)

"""The queue operations of postsuper and postqueue over a worker's stores: the
same code for a running relay (through its control socket) and for root on a
stopped queue (relayd.cli.queue_cmd)."""
from __future__ import annotations

from relayd.queue.state import DEFERRED_Q


def parse_selection(args: list[str]) -> tuple[list[str], set[str]]:
    """A queue operation's words: the queue ids (or ["ALL"]) and the queue names
    of a ``queues=deferred,hold`` word (empty: every queue)."""
    queues: set[str] = set()
    ids = []
    for word in args:
        if word.startswith("queues="):
            queues.update(filter(None, word[len("queues="):].split(",")))
        else:
            ids.append(word)
    return ids, queues


def apply_queue_op(stores, command: str, queue_ids: list[str], queues=()) -> list[str]:
    """Apply hold/release/delete/requeue to ``queue_ids`` (["ALL"]: every message)
    found in ``stores`` and in ``queues`` (any when empty); the ids changed."""
    changed = []
    for store in stores:
        found = store.messages() if queue_ids == ["ALL"] else filter(None, map(store.get, queue_ids))
        changed += [m.queue_id for m in list(found)
                    if (not queues or m.state in queues) and getattr(store, command)(m.queue_id)]
    return changed


def make_due(store, args: list[str]) -> int:
    """postqueue -s (``site=DOMAIN``: deferred messages with a recipient there) or
    -i (queue ids): those messages due now; how many."""
    site = args[0][len("site="):].lower() if args and args[0].startswith("site=") else ""
    messages = store.messages(DEFERRED_Q) if site else filter(None, map(store.get, args))
    due = [m.queue_id for m in list(messages) if not site or any(
        r.address.rpartition("@")[2].lower() == site for r in m.envelope.recipients)]
    return sum(store.requeue(qid) for qid in due)

"""``postsuper``, as Postfix's: delete, hold, release and requeue queued mail.

    postsuper [-v] [-c DIR] [-d ID] [-h ID] [-H ID] [-r ID] [queue...]

Each of -d/-h/-H/-r may be repeated; ID ``ALL`` means every message, ``-``
reads ids from stdin, one a line (``mailq | awk ... | postsuper -d -``).
Queue names (hold, incoming, active, deferred) limit the operations to
those queues: ``postsuper -d ALL deferred``. What happened is reported on
stderr as Postfix's postsuper reports it ("postsuper: Deleted: 3 messages").
Like Postfix's, it is for the superuser (or relayd's own user): a running
relayd checks the caller of its control socket; with relayd down, root
works on the queue directory itself (see relayd.cli.queue_cmd).
"""
from __future__ import annotations

import getopt
import re
import sys

from relayd.cli.postqueue import _queue_directory
from relayd.cli.queue_cmd import fail, operate, report

EX_USAGE = 64
# Postfix's order of work: delete first, so that nothing deleted is then requeued.
_OPERATIONS = (("-d", "delete"), ("-h", "hold"), ("-H", "release"), ("-r", "requeue"))
QUEUES = ("hold", "incoming", "active", "deferred")
# Queue ids as relayd writes them (and Postfix's short and long forms).
_QUEUE_ID = re.compile(r"[0-9A-Za-z]{1,32}$")
MAX_STDIN_IDS = 1_000_000   # a bound on "-": ids read from stdin


def main(argv: list[str] | None = None, prog: str = "postsuper") -> int:
    """The postsuper command; the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, queues = getopt.getopt(argv, "c:d:h:H:r:spv")
    except getopt.GetoptError as exc:
        print(f"{prog}: fatal: {exc}", file=sys.stderr)
        return EX_USAGE
    directory = next((v for f, v in reversed(opts) if f == "-c"), None)
    wanted = {op: [v for f, v in opts if f == flag] for flag, op in _OPERATIONS}
    for name in queues:
        if name not in QUEUES:
            print(f"{prog}: fatal: invalid directory name: {name}", file=sys.stderr)
            return EX_USAGE
    try:
        wanted = {op: _expand(ids) for op, ids in wanted.items()}
    except ValueError as exc:
        print(f"{prog}: fatal: {exc}", file=sys.stderr)
        return EX_USAGE
    queue_directory = _queue_directory(directory, prog)
    if queue_directory is None:
        return 78
    for op, ids in wanted.items():
        if not ids:
            continue
        try:
            changed = operate(queue_directory, op, ids, set(queues), prog)
        except OSError as exc:
            return fail(prog, exc)
        report(prog, op, changed)
    return 0


def _expand(ids: list[str]) -> list[str]:
    """The ids of one operation: ``-`` replaced by stdin's lines, ``ALL`` alone
    when given; ValueError for an id that cannot be one (as postsuper refuses it)."""
    if "ALL" in ids:
        return ["ALL"]
    out = []
    for qid in ids:
        if qid == "-":
            out += _stdin_ids()
        elif _QUEUE_ID.match(qid):
            out.append(qid)
        else:
            raise ValueError(f"invalid mail queue id: {qid}")
    return list(dict.fromkeys(out))


def _stdin_ids() -> list[str]:
    out = []
    for n, line in enumerate(sys.stdin):
        if n >= MAX_STDIN_IDS:
            raise ValueError(f"more than {MAX_STDIN_IDS} queue ids on stdin")
        qid = line.strip()
        if qid and not _QUEUE_ID.match(qid):
            raise ValueError(f"invalid mail queue id: {qid}")
        if qid:
            out.append(qid)
    return out


if __name__ == "__main__":
    sys.exit(main())

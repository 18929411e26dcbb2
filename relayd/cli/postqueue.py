"""``postqueue`` and ``mailq``, as Postfix's (installed under both names and as relayd-NAME).

    postqueue [-v] [-c DIR] -p          the queue, as mailq lists it
    postqueue [-v] [-c DIR] -j          the queue as JSON lines (showq_json's fields)
    postqueue [-v] [-c DIR] -f          deliver deferred mail now
    postqueue [-v] [-c DIR] -s SITE     deliver deferred mail for SITE now
    postqueue [-v] [-c DIR] -i ID       deliver the deferred message ID now
    mailq [-c DIR]                      = postqueue -p

The running daemon answers through its control sockets (relayd.control).
"""
from __future__ import annotations

import getopt
import sys

from relayd.cli.queue_cmd import EX_UNAVAILABLE, fail, queue_records
from relayd.queue.showq import format_json, format_mailq

EX_USAGE = 64
USAGE = "usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | postqueue -s site"


def main(argv: list[str] | None = None, prog: str = "postqueue") -> int:
    """The postqueue command; the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, rest = getopt.getopt(argv, "c:fi:jps:v")
    except getopt.GetoptError as exc:
        print(f"{prog}: fatal: {exc}\n{USAGE}", file=sys.stderr)
        return EX_USAGE
    directory, modes, ids = None, set(), []
    for flag, value in opts:
        if flag == "-c":
            directory = value
        elif flag == "-i":
            ids.append(value)
        if flag in ("-f", "-i", "-j", "-p", "-s"):
            modes.add(flag)
    site = next((v for f, v in opts if f == "-s"), "")
    if rest or len(modes) != 1:
        print(f"{prog}: fatal: {USAGE}", file=sys.stderr)
        return EX_USAGE
    queue_directory = _queue_directory(directory, prog)
    if queue_directory is None:
        return 78
    (mode,) = modes
    if mode in ("-p", "-j"):
        return show(queue_directory, mode == "-j", prog)
    return flush(queue_directory, ["site=" + site] if site else ids, prog)


def mailq_main(argv: list[str] | None = None) -> int:
    """``mailq [-c DIR] [-v]``: postqueue -p."""
    argv = sys.argv[1:] if argv is None else argv
    return main([a for a in argv if a != "-v"] + ["-p"], prog="mailq")


def _queue_directory(directory: str | None, prog: str) -> str | None:
    from relayd.config import ConfigError, config_directory, load_config
    try:
        return load_config(config_directory(directory))["queue_directory"]
    except ConfigError as exc:
        print(f"{prog}: fatal: {exc}", file=sys.stderr)
        return None


def show(queue_directory: str, as_json: bool, prog: str) -> int:
    """postqueue -p / -j."""
    try:
        records = queue_records(queue_directory, prog)
    except OSError as exc:
        return fail(prog, exc)
    sys.stdout.write(format_json(records) if as_json else format_mailq(records))
    return 0


def flush(queue_directory: str, args: list[str], prog: str) -> int:
    """postqueue -f (no args), -s (``site=SITE``), -i (queue ids): ask every worker."""
    from relayd.control import request_all
    try:
        answers = request_all(queue_directory, " ".join(["flush", *args]))
    except PermissionError as exc:
        return fail(prog, exc)
    except OSError:
        print(f"{prog}: fatal: Cannot flush mail queue - mail system is down", file=sys.stderr)
        return EX_UNAVAILABLE
    return 0 if all(a == "ok" for a in answers) else 1


if __name__ == "__main__":
    sys.exit(main())

"""``relayd-postmap``: postmap(1) for relayd's tables.

    relayd-postmap [-c DIR] [type:]FILE ...        build FILE.db (default type: hash)
    relayd-postmap [-c DIR] -q KEY TABLE ...       print KEY's value from the first table having it
    relayd-postmap [-c DIR] -q - TABLE ...         keys on stdin; print "key<TAB>value" per found key
    relayd-postmap [-c DIR] -s TABLE               print every "key<TAB>value"

A query that finds nothing exits with status 1, as Postfix's postmap does;
a bad table or line exits 78 (EX_CONFIG) naming file and line; a table that
cannot answer now exits 75 (EX_TEMPFAIL). Table names may use ``$name``
parameters of DIR/main.cf (``$config_directory/access``).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Callable, TextIO

EX_NOTFOUND = 1
EX_USAGE = 64
EX_TEMPFAIL = 75
EX_CONFIG = 78

# How a found entry is printed: postmap "key<TAB>value", postalias "key:<TAB>value".
Formatter = Callable[[str, str], str]


def tab_separated(key: str, value: str) -> str:
    return f"{key}\t{value}"


def parser(prog: str, building: str) -> argparse.ArgumentParser:
    """The options postmap and postalias share."""
    p = argparse.ArgumentParser(prog=prog, description=f"build or query {building}")
    p.add_argument("-c", dest="config_directory", metavar="DIR",
                   help="configuration directory holding main.cf")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-q", dest="query", metavar="KEY",
                      help="look KEY up ('-' reads keys from standard input)")
    mode.add_argument("-s", dest="show", action="store_true", help="print every entry")
    p.add_argument("tables", nargs="+", metavar="TABLE")
    return p


class _PostfixStyle(logging.Formatter):
    """"postmap: warning: ...": Postfix writes severities in lower case."""

    def __init__(self, prog: str):
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.prog}: {record.levelname.lower()}: {record.getMessage()}"


@contextlib.contextmanager
def warnings_to_stderr(prog: str):
    """Show the tables' warnings (duplicate entries...) as Postfix's commands do."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PostfixStyle(prog))
    logger = logging.getLogger("relayd")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def with_type(name: str) -> str:
    """A table name without ``type:`` is a hash: table (default_database_type)."""
    return name if ":" in name and not name.startswith("/") else f"hash:{name}"


def run(argv: list[str], prog: str, build: Callable[[str, object], int],
        formatter: Formatter, *, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Parse *argv*, then build, query or list, with Postfix's exit statuses."""
    from relayd.config import ConfigError, load_config
    from relayd.tables.base import TemporaryLookupError, open_table
    try:
        args = parser(prog, "lookup tables").parse_args(argv)
    except SystemExit as exc:
        return EX_USAGE if exc.code else 0
    out = stdout or sys.stdout
    with warnings_to_stderr(prog):
        try:
            config = load_config(args.config_directory) if args.config_directory else None
            specs = [with_type(t) for t in args.tables]
            if args.query is not None:
                tables = [open_table(s, config) for s in specs]
                keys = _keys(args.query, stdin or sys.stdin)
                return _query(tables, keys, args.query == "-", formatter, out)
            if args.show:
                for spec in specs:
                    for key, value in open_table(spec, config).iterate():
                        out.write(formatter(key, value) + "\n")
                return 0
            for spec in specs:
                build(spec, config)
            return 0
        except ConfigError as exc:
            print(f"{prog}: fatal: {exc}", file=sys.stderr)
            return EX_CONFIG
        except TemporaryLookupError as exc:
            print(f"{prog}: fatal: table lookup problem: {exc}", file=sys.stderr)
            return EX_TEMPFAIL


def _keys(query: str, stdin: TextIO) -> list[str]:
    if query != "-":
        return [query]
    return [line.strip() for line in stdin if line.strip()]


def _query(tables, keys: list[str], from_stdin: bool, formatter: Formatter, out: TextIO) -> int:
    found = 0
    for key in keys:
        for table in tables:
            value = table.lookup(key)
            if value is not None:
                out.write((formatter(key, value) if from_stdin else value) + "\n")
                found += 1
                break
    return 0 if found else EX_NOTFOUND


def main(argv: list[str] | None = None) -> int:
    """``relayd-postmap`` / ``relayd postmap``: returns the exit status."""
    from relayd.tables.base import compile_table
    return run(sys.argv[1:] if argv is None else argv, "relayd-postmap", compile_table,
               tab_separated)


if __name__ == "__main__":
    sys.exit(main())

"""``relayd-postmap``: postmap(1) for relayd's tables.

    relayd-postmap [options] [type:]FILE ...       build FILE.db (default type: hash)
    relayd-postmap [options] -i [type:]FILE        add the entries on stdin to FILE.db
    relayd-postmap [options] -d KEY|- TABLE ...    delete KEY (or each key on stdin)
    relayd-postmap [options] -q KEY TABLE ...      print KEY's value from the first table having it
    relayd-postmap [options] -q - TABLE ...        keys on stdin; print "key<TAB>value" per found key
    relayd-postmap [options] -b|-h -q - TABLE ...  keys are the body lines / logical header
                                                   lines of the message on stdin
    relayd-postmap [options] -s TABLE              print every "key<TAB>value"

Options as Postfix's: ``-c DIR``; ``-f`` no case folding of keys (building,
querying, deleting); ``-r`` replace / ``-w`` silently ignore duplicate keys
(default: warn, keep the first); ``-p`` new files get mode 0644 instead of
the source file's; ``-v`` log more. ``-N``, ``-n`` (terminating null
bytes: relayd's FILE.db stores strings with their length) and ``-o``
(relayd-postmap never changes its user) are accepted and do nothing.

A query or delete that finds nothing exits with status 1, as Postfix's
postmap does; a bad table or line exits 78 (EX_CONFIG) naming file and line;
a table that cannot answer now exits 75 (EX_TEMPFAIL); bad options exit 64.
Table names may use ``$name`` parameters of DIR/main.cf
(``$config_directory/access``).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Callable, Iterator, TextIO

EX_NOTFOUND = 1
EX_USAGE = 64
EX_TEMPFAIL = 75
EX_CONFIG = 78

# How a found entry is printed: postmap "key<TAB>value", postalias "key:<TAB>value".
Formatter = Callable[[str, str], str]


def tab_separated(key: str, value: str) -> str:
    return f"{key}\t{value}"


@dataclass(frozen=True)
class Tool:
    """What differs between postmap and postalias.

    ``parse(text, path, fold=)`` yields (line, key, value) of a source text
    (the table's source when building, stdin with ``-i``);
    ``message_modes``: whether ``-b``/``-h`` exist."""

    prog: str
    parse: Callable[..., Iterator[tuple[int, str, str]]]
    formatter: Formatter
    message_modes: bool


def parser(tool: Tool) -> argparse.ArgumentParser:
    """The options of postmap (and of postalias, without -b/-h)."""
    # No -h for help: Postfix's -h is header query mode.
    p = argparse.ArgumentParser(prog=tool.prog, add_help=False,
                                description="build, update or query lookup tables")
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-c", dest="config_directory", metavar="DIR",
                   help="configuration directory holding main.cf")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-q", dest="query", metavar="KEY",
                      help="look KEY up ('-' reads keys from standard input)")
    mode.add_argument("-d", dest="delete", metavar="KEY",
                      help="delete KEY ('-' reads keys from standard input)")
    mode.add_argument("-s", dest="show", action="store_true", help="print every entry")
    mode.add_argument("-i", dest="incremental", action="store_true",
                      help="add the entries on standard input to an existing table")
    dup = p.add_mutually_exclusive_group()
    dup.add_argument("-r", dest="duplicates", action="store_const", const="replace",
                     help="replace duplicate entries silently")
    dup.add_argument("-w", dest="duplicates", action="store_const", const="ignore",
                     help="ignore duplicate entries silently")
    p.add_argument("-f", dest="fold", action="store_false", help="do not fold keys to lower case")
    p.add_argument("-p", dest="mode", action="store_const", const=0o644,
                   help="create files with mode 0644, not the source file's mode")
    p.add_argument("-v", dest="verbose", action="count", default=0, help="log more")
    for flag, text in (("-N", "accepted (no terminating null bytes in relayd's tables)"),
                       ("-n", "accepted (no terminating null bytes in relayd's tables)"),
                       ("-o", "accepted (relayd's tools never change their user)")):
        p.add_argument(flag, action="store_true", dest="ignored_" + flag[1], help=text)
    if tool.message_modes:
        p.add_argument("-b", dest="body", action="store_true",
                       help="with -q -: each body line of the message on stdin is a key")
        p.add_argument("-h", dest="headers", action="store_true",
                       help="with -q -: each logical header line of the message on stdin is a key")
    p.add_argument("tables", nargs="+", metavar="TABLE")
    return p


def parse_args(tool: Tool, argv: list[str]) -> argparse.Namespace:
    """The parsed options; SystemExit(EX_USAGE) with a message when they do not fit."""
    p = parser(tool)
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        raise SystemExit(EX_USAGE if exc.code else 0) from None
    args.duplicates = args.duplicates or "warn"
    message = getattr(args, "body", False) or getattr(args, "headers", False)
    if message and args.query != "-":
        p.print_usage(sys.stderr)
        print(f'{tool.prog}: fatal: specify -b or -h only with "-q -"', file=sys.stderr)
        raise SystemExit(EX_USAGE)
    if args.incremental and len(args.tables) != 1:
        print(f"{tool.prog}: fatal: -i updates one table at a time", file=sys.stderr)
        raise SystemExit(EX_USAGE)
    return args


class _PostfixStyle(logging.Formatter):
    """"postmap: warning: ...": Postfix writes severities in lower case."""

    def __init__(self, prog: str):
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.prog}: {record.levelname.lower()}: {record.getMessage()}"


@contextlib.contextmanager
def warnings_to_stderr(prog: str, verbose: int = 0):
    """Show the tables' warnings (duplicate entries...) as Postfix's commands do;
    with *verbose*, their informational messages too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PostfixStyle(prog))
    logger = logging.getLogger("relayd")
    level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def with_type(name: str) -> str:
    """A table name without ``type:`` is a hash: table (default_database_type)."""
    return name if ":" in name and not name.startswith("/") else f"hash:{name}"


def run(argv: list[str], tool: Tool, *, stdin: TextIO | None = None,
        stdout: TextIO | None = None) -> int:
    """Parse *argv*, then build, update, delete, query or list, with Postfix's exit statuses."""
    from relayd.config import ConfigError, config_directory, load_config
    from relayd.tables.base import TemporaryLookupError
    from relayd.tables.hashdb import rebuilt_by
    try:
        args = parse_args(tool, argv)
    except SystemExit as exc:
        return exc.code
    stdin, out = stdin or sys.stdin, stdout or sys.stdout
    with warnings_to_stderr(tool.prog, args.verbose), rebuilt_by(tool.prog):
        try:
            directory = config_directory(args.config_directory)
            config = load_config(directory) if directory else None
            specs = [_expanded(with_type(t), config) for t in args.tables]
            return _dispatch(tool, args, specs, config, stdin, out)
        except ConfigError as exc:
            print(f"{tool.prog}: fatal: {exc}", file=sys.stderr)
            return EX_CONFIG
        except TemporaryLookupError as exc:
            print(f"{tool.prog}: fatal: table lookup problem: {exc}", file=sys.stderr)
            return EX_TEMPFAIL


def _expanded(spec: str, config) -> str:
    return config.expand(spec) if config is not None and "$" in spec else spec


def _dispatch(tool: Tool, args, specs: list[str], config, stdin: TextIO, out: TextIO) -> int:
    if args.query is not None:
        maps = _open(specs, config, args.fold)
        if getattr(args, "body", False) or getattr(args, "headers", False):
            from relayd.cleanup.message_keys import message_keys
            keys = message_keys(stdin, headers=args.headers, body=args.body)
        else:
            keys = _keys(args.query, stdin)
        return _query(maps, keys, args.query == "-", tool.formatter, out)
    if args.show:
        for table in _open(specs, config, args.fold):
            for key, value in table.iterate():
                out.write(tool.formatter(key, value) + "\n")
        return 0
    if args.delete is not None:
        keys = list(_keys(args.delete, stdin))
        found = 0
        for spec in specs:
            with _open_for_update(spec, config, args.fold) as table:
                found += table.delete(keys)
        return 0 if found else EX_NOTFOUND
    if args.incremental:
        with _open_for_update(specs[0], config, args.fold) as table:
            table.update(_entries(tool, stdin), duplicates=args.duplicates, mode=args.mode)
        return 0
    from relayd.tables.base import compile_table
    for spec in specs:
        compile_table(spec, config, parse=tool.parse, fold=args.fold,
                      duplicates=args.duplicates, mode=args.mode)
    return 0


def _open(specs: list[str], config, fold: bool):
    """The tables to query, as postmap opens them (``-f``: no case folding)."""
    from relayd.tables.base import open_table
    from relayd.tables.maps import Maps
    tables = [open_table(spec, config) for spec in specs]
    return Maps("postmap", tables if fold else [t.without_case_folding() for t in tables],
                checked=False)


def _open_for_update(spec: str, config, fold: bool):
    from relayd.tables.base import open_table
    table = open_table(spec, config, create=True)
    return table if fold else table.without_case_folding()


def _entries(tool: Tool, stdin: TextIO) -> Iterator[tuple[str, str]]:
    """The (key, value) entries on stdin, read only when the table asks (a
    table that cannot change refuses first); the table folds the keys."""
    for _, key, value in tool.parse(stdin.read(), "stdin", fold=False):
        yield key, value


def _keys(query: str, stdin: TextIO) -> Iterator[str]:
    if query != "-":
        return iter([query])
    return (line.strip() for line in stdin if line.strip())


def _query(maps, keys: Iterator[str], from_stdin: bool, formatter: Formatter,
           out: TextIO) -> int:
    found = 0
    for key in keys:
        value = maps.find(key)
        if value is not None:
            out.write((formatter(key, value) if from_stdin else value) + "\n")
            found += 1
    return 0 if found else EX_NOTFOUND


def main(argv: list[str] | None = None) -> int:
    """``relayd-postmap`` / ``relayd postmap``: returns the exit status."""
    from relayd.tables.textfile import key_value_lines
    tool = Tool("relayd-postmap", key_value_lines, tab_separated, message_modes=True)
    return run(sys.argv[1:] if argv is None else argv, tool)


if __name__ == "__main__":
    sys.exit(main())

"""Postfix's table source text: logical lines and ``key whitespace value``.

A logical line is a line that does not start with whitespace plus every
following line that does (the newline is dropped, the leading whitespace
kept, as Postfix's readllines() does). Empty, all-blank and ``#`` lines are
skipped, also between a line and its continuation. Each logical line is
reported with the number of its first physical line, which is what error
messages name.
"""
from __future__ import annotations

import logging
from typing import Iterator

from relayd.config import ConfigError
from relayd.tables.base import TableUnavailable

log = logging.getLogger("relayd.tables")


def read_source(path: str) -> str:
    """The text of table source *path*; ConfigError naming it when unreadable."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError as exc:
        raise TableUnavailable(f"open {path}: {exc.strerror}") from None


def logical_lines(text: str, path: str) -> Iterator[tuple[int, str]]:
    """(first line number, logical line without trailing blanks) for each rule.

    Continuation text with nothing before it is an error (Postfix warns and
    skips it; relayd never skips a rule).
    """
    start, parts = 0, []
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            if not parts:
                raise ConfigError(f"logical line must not start with whitespace: {stripped[:30]!r}",
                                  file=path, line=number)
            parts.append(line)
            continue
        if parts:
            yield start, "".join(parts).rstrip()
        start, parts = number, [line]
    if parts:
        yield start, "".join(parts).rstrip()


# What to do with a key that is already in the table (postmap's -r and -w).
DUP_WARN = "warn"        # default: log it and keep the first value
DUP_REPLACE = "replace"  # -r: the later value wins, silently
DUP_IGNORE = "ignore"    # -w: keep the first value, silently


def add_entry(entries: dict[str, str], key: str, value: str, duplicates: str, where: str) -> None:
    """Put *key* into *entries* unless it is there already, then as *duplicates* says.

    *where* names the source in the warning ("FILE, line N")."""
    if key in entries:
        if duplicates == DUP_REPLACE:
            entries[key] = value
        elif duplicates == DUP_WARN:
            log.warning('%s: duplicate entry: "%s"', where, key)
        return
    entries[key] = value


def key_value_lines(text: str, path: str, *, fold: bool = True) -> Iterator[tuple[int, str, str]]:
    """(line number, key, value) of each ``key whitespace value`` line, in order.

    Keys are folded to lower case unless *fold* is False (postmap -f); a line
    without a value is a ConfigError."""
    for number, line in logical_lines(text, path):
        fields = line.split(None, 1)
        if len(fields) < 2:
            raise ConfigError("expected format: key whitespace value", file=path, line=number)
        yield number, fields[0].lower() if fold else fields[0], fields[1]


def key_value_entries(text: str, path: str, *, fold: bool = True,
                      duplicates: str = DUP_WARN, parse=key_value_lines) -> dict[str, str]:
    """The entries of an access(5)-style source as a dict (see :func:`key_value_lines`;
    *parse* reads another format, such as aliases(5)); a duplicate key is handled
    as *duplicates* says (by default logged and the first one kept, as Postfix's
    postmap does)."""
    entries: dict[str, str] = {}
    for number, key, value in parse(text, path, fold=fold):
        add_entry(entries, key, value, duplicates, f"{path}, line {number}")
    return entries

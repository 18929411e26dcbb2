"""Reading main.cf: logical lines and ``name = value`` settings (postconf(5)).

A logical line starts at a line that does not begin with whitespace; lines
that begin with whitespace continue it (joined with one space). Blank lines
and lines whose first non-blank character is ``#`` are skipped and do not end
a logical line. Whitespace around ``=`` and at the end of a value is dropped.
master.cf uses the same logical lines.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Iterator

from relayd.config.errors import ConfigError

log = logging.getLogger("relayd.config")

_SETTING = re.compile(r"([^=\s]+)\s*=\s*(.*)", re.DOTALL)


@dataclass(frozen=True)
class Setting:
    """One ``name = value`` and where it was set (file None: set by a program)."""

    name: str
    value: str
    file: str | None = None
    line: int | None = None


def logical_lines(text: str, file: str) -> Iterator[tuple[int, str]]:
    """(first line number, joined text) for each logical line of *text*."""
    start, parts = 0, []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace():
            if parts:
                parts.append(stripped)
            else:
                log.warning("%s, line %d: logical line must not start with whitespace: %r",
                            file, number, line)
            continue
        if parts:
            yield start, " ".join(parts)
        start, parts = number, [stripped]
    if parts:
        yield start, " ".join(parts)


def parse_main_cf(text: str, file: str) -> list[Setting]:
    """The settings of a main.cf text, in file order (a later one overrides)."""
    settings = []
    for number, line in logical_lines(text, file):
        if line.startswith("="):
            raise ConfigError(f'missing attribute name: "{line}"', file=file, line=number)
        match = _SETTING.fullmatch(line)
        if not match:
            raise ConfigError(f"missing '=' after attribute name: \"{line}\"",
                              file=file, line=number)
        settings.append(Setting(match.group(1), match.group(2).rstrip(), file, number))
    return settings

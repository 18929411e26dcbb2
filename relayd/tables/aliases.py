"""aliases(5) source files, compiled by postalias(1) / newaliases(1).

    name: value, value, ...        (continued on lines that start with blanks)
    "name with blanks": value

Names are folded to lower case; ``:include:/file``, ``|command`` and
``/file`` values are kept as text. Values are re-joined with ", " as
Postfix's postalias writes them. postalias builds the table with
``compile_table(spec, parse=alias_lines)``, the same FILE.db as ``hash:``
(relayd.tables.hashdb), so ``alias_maps = hash:/etc/aliases`` reads it.
Unlike Postfix, relayd does not add the Sendmail/NIS ``@`` and ``YP_*``
entries.
"""
from __future__ import annotations

from typing import Iterator

from relayd.config import ConfigError
from relayd.tables.textfile import logical_lines


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """*text* cut at *separator* wherever it is not inside "double quotes"."""
    parts, current, quoted, escaped = [], [], False, False
    for c in text:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(c)
    parts.append("".join(current))
    return parts


def parse_alias_line(line: str, fold: bool = True) -> tuple[str, str]:
    """``'Root: a,b'`` -> ``("root", "a, b")``; ValueError without name:value.

    The name is folded to lower case unless *fold* is False (postalias -f)."""
    fields = _split_outside_quotes(line, ":")
    name = fields[0].strip()
    value = ":".join(fields[1:]).strip()
    if len(fields) < 2 or not name or not value:
        raise ValueError("need name:value pair")
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = name[1:-1]
    return (name.lower() if fold else name), \
        ", ".join(v.strip() for v in _split_outside_quotes(value, ","))


def alias_lines(text: str, path: str, *, fold: bool = True) -> Iterator[tuple[int, str, str]]:
    """(line number, name, value) of each entry of an aliases(5) text, in order."""
    for number, line in logical_lines(text, path):
        try:
            name, value = parse_alias_line(line, fold)
        except ValueError as exc:
            raise ConfigError(str(exc), file=path, line=number) from None
        yield number, name, value

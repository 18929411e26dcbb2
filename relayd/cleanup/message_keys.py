"""Lookup keys cut from a message, as ``postmap -h`` / ``postmap -b`` make them.

``postmap -hq - TABLE <message`` looks up each logical header line (a
header and its continuation lines, joined with newlines); ``-bq -`` each
body line; both together, both. This is how an admin tries header_checks
and body_checks on a sample message. As Postfix does without ``-m`` (no
MIME parsing), the headers end at the first line that neither is a header
nor continues one; that line starts the body, and the body begins with an
empty key standing for the end of the headers (Postfix's mime_state emits
it even when no empty line was there).
"""
from __future__ import annotations

from typing import Iterable, Iterator

from relayd.smtp.text import header_name


def message_keys(lines: Iterable[str], *, headers: bool, body: bool) -> Iterator[str]:
    """The lookup keys of the message *lines* (with or without their newlines)."""
    current = None  # the header being collected
    lines = iter(lines)
    for line in lines:
        line = line.rstrip("\n")
        if current is not None and line[:1] in (" ", "\t"):
            current += "\n" + line
            continue
        if current is not None and headers:
            yield current
        current = None
        if header_name(line.encode("utf-8", "surrogateescape")) is not None:
            current = line
            continue
        if body:
            yield ""
            if line:
                yield line
            yield from (rest.rstrip("\n") for rest in lines)
        return
    if current is not None and headers:
        yield current

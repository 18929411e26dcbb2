"""The invariants every fuzz harness checks, defined once.

"Wire form" is how relayd keeps message content from DATA to the next hop:
CRLF-terminated lines, dot-stuffed, without the final ".\\r\\n". The one
property that makes it safe to relay (issue 7, item 4) is that ``wire +
b".\\r\\n"`` is exactly one valid DATA transmission:

* it is empty or ends with CRLF, so the ".\\r\\n" starts a line;
* no line is a lone "." (no CRLF.CRLF before the end, no ".\\r\\n" first line):
  a next hop would end the message there and run the rest as commands;
* every CR is followed by LF and every LF preceded by CR (no bare CR/LF that a
  lenient next hop could read as a line end);
* no NUL.

"Every line that starts with '.' is stuffed" can only be told when the
content the wire form stands for is known (a lone "." is the one case that
shows in the bytes alone); :func:`assert_stuffed` checks it against that
content, for the harnesses that know it.

Each ``*_violation`` function returns None or a short description, so that a
harness can use it in an assert message and the long-run tool can report it.
"""
from __future__ import annotations

import email
import email.policy

__all__ = [
    "wire_form_violation", "assert_wire_form", "dot_stuff", "dot_unstuff", "assert_stuffed",
    "header_block_violation", "assert_header_block", "text_violation", "assert_printable_text",
    "parse_wire_message",
]

_CONTROL_FREE = {c: None for c in range(32) if c != 9}   # str.translate table: C0 but HT


def wire_form_violation(wire: bytes, *, complete: bool = True) -> str | None:
    """Why ``wire + b".\\r\\n"`` is not one valid DATA transmission, or None.

    ``complete=False`` checks a prefix handed on so far (a message refused part
    way): it need not end with CRLF and may end in a CR whose LF is to come.
    """
    if b"\0" in wire:
        return f"NUL at offset {wire.index(0)}"
    if wire[:3] == b".\r\n" or wire == b".":
        return "first line is a lone '.'"
    end = wire.find(b"\r\n.\r\n")
    if end >= 0:
        return f"CRLF.CRLF at offset {end}, before the end of data"
    body = wire
    if not complete and body.endswith(b"\r"):
        body = body[:-1]
    crlf = body.count(b"\r\n")
    if body.count(b"\r") != crlf:
        at = body.replace(b"\r\n", b"  ").index(b"\r")
        return f"bare CR at offset {at}"
    if body.count(b"\n") != crlf:
        at = body.replace(b"\r\n", b"  ").index(b"\n")
        return f"bare LF at offset {at}"
    if complete and wire and not wire.endswith(b"\r\n"):
        return "does not end with CRLF"
    return None


def assert_wire_form(wire: bytes, *, complete: bool = True) -> None:
    """Fail when ``wire + b".\\r\\n"`` is not exactly one DATA transmission."""
    problem = wire_form_violation(wire, complete=complete)
    assert problem is None, f"wire form broken: {problem}: {wire[:200]!r}..."


def dot_stuff(content: bytes) -> bytes:
    """CRLF-line ``content`` (unstuffed) in wire form: one more "." on every
    line that starts with one (RFC 5321 4.5.2)."""
    lines = content.split(b"\r\n")
    return b"\r\n".join(b"." + line if line[:1] == b"." else line for line in lines)


def dot_unstuff(wire: bytes) -> bytes:
    """What a receiving MTA makes of wire form: the first "." of each line removed."""
    lines = wire.split(b"\r\n")
    return b"\r\n".join(line[1:] if line[:1] == b"." else line for line in lines)


def assert_stuffed(wire: bytes, content: bytes) -> None:
    """``wire`` is ``content`` with every line that starts with "." stuffed,
    and nothing else changed."""
    assert wire == dot_stuff(content), f"not the stuffed form of the content: {wire[:200]!r}"


def header_block_violation(block: bytes) -> str | None:
    """Why ``block`` (CRLF lines up to, not including, the empty line) is not a
    well-formed header block, or None: every line starts a header ("name:", the
    name printable ASCII) or continues one (starts with SP or HT), the first
    line starts a header, no line is empty, no line starts with "."."""
    if not block:
        return None
    if not block.endswith(b"\r\n"):
        return "header block does not end with CRLF"
    lines = block[:-2].split(b"\r\n")
    for number, line in enumerate(lines):
        if not line:
            return f"empty line {number} inside the header block"
        if line[:1] in (b" ", b"\t"):
            if number == 0:
                return "header block starts with a continuation line"
            continue
        colon = line.find(b":")
        name = line[:colon].rstrip(b" \t") if colon > 0 else b""
        if not name or any(c <= 32 or c >= 127 for c in name):
            return f"line {number} is neither a header nor a continuation: {line[:80]!r}"
    return None


def assert_header_block(block: bytes) -> None:
    """Fail when ``block`` is not a well-formed header block (see header_block_violation)."""
    problem = header_block_violation(block)
    assert problem is None, f"{problem}: {block[:300]!r}"


def text_violation(text: str) -> str | None:
    """Why ``text`` cannot be put into a header, a log line or a reply as it
    is (CR, LF, NUL or another C0 control other than HT; or a Unicode line
    separator: U+0085, U+2028, U+2029), or None."""
    if len(text.translate(_CONTROL_FREE)) != len(text):
        bad = next(ch for ch in text if ord(ch) < 32 and ch != "\t")
        return f"control character {bad!r} at {text.index(bad)}"
    for ch in "\x85\u2028\u2029":
        if ch in text:
            return f"line separator {ch!r} at {text.index(ch)}"
    return None


def assert_printable_text(text: str) -> None:
    """Fail when ``text`` holds a character that breaks a line (see text_violation)."""
    problem = text_violation(text)
    assert problem is None, f"{problem}: {text[:200]!r}"


def parse_wire_message(wire: bytes) -> email.message.Message:
    """The message a next hop receives for ``wire`` (after dot-unstuffing),
    parsed by the standard library's email package."""
    return email.message_from_bytes(dot_unstuff(wire), policy=email.policy.compat32)

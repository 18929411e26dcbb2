"""Text that relayd writes to a peer, a header or a log: kept on one line, kept short.

Two pure functions, shared by the SMTP client core, the DSN builder and
anyone else who passes on a string that came from outside:

- :func:`printable` is Postfix's printable() (src/util/printable.c): every
  character that is not printable becomes "?". Postfix keeps printable ASCII
  and, with SMTPUTF8, valid UTF-8; so does this, but it also replaces what
  Python's own line splitting treats as a line break (U+0085, U+2028,
  U+2029): the email package folds and splits header values with
  str.splitlines(), so such a character in a header value would start a new
  header line. Undecodable bytes (U+FFFD after a "replace" decode) become
  "?" as Postfix's invalid UTF-8 does.
- :func:`break_long_lines` is smtp(8)'s smtp_line_length_limit
  (src/smtp/smtp_proto.c, smtp_text_out()): a line of message content
  longer than the limit is broken by inserting CRLF SPACE, so a long header
  stays one (folded) header.
- :func:`header_name` is is_header() (src/global/is_header.c): the name of
  the header a line starts, or None.
"""
from __future__ import annotations

__all__ = ["printable", "break_long_lines", "header_name"]

# Printable (str.isprintable) but unwanted: the decoder's stand-in for bad bytes.
_REPLACEMENT_CHAR = "\ufffd"


def printable(text: str, replacement: str = "?", *, utf8: bool = True) -> str:
    """``text`` with each non-printable character replaced by ``replacement``:
    ASCII controls (CR, LF, TAB, NUL, DEL), C1 controls (U+0085 among them),
    U+2028/U+2029, other Unicode separators and format characters, lone
    surrogates and U+FFFD; with ``utf8`` false (Postfix's util_utf8_enable
    off), every non-ASCII character too. The result never contains a line
    break."""
    if text.isprintable() and (text.isascii() or utf8 and _REPLACEMENT_CHAR not in text):
        return text     # the common case, decided in C
    return "".join(ch if ch.isprintable() and (ch.isascii() or utf8 and ch != _REPLACEMENT_CHAR)
                   else replacement for ch in text)


def has_long_line(wire: bytes, limit: int) -> bool:
    """Whether a line of ``wire`` is longer than ``limit`` octets (exact when
    lines end with CRLF, as the queue stores them). From each line start the
    last LF within ``limit`` + 2 octets is looked up in C (memrchr) and the
    scan goes on after it: a few calls per ``limit`` octets, not a step per
    line or per byte; no LF there means the line starting here is too long."""
    window = limit + 2          # a line of ``limit`` octets and its CRLF
    pos, size = 0, len(wire)
    while size - pos > window:
        newline = wire.rfind(b"\n", pos, pos + window)
        if newline < 0:
            return True
        pos = newline + 1
    return False


def break_long_lines(wire: bytes, limit: int) -> bytes:
    """``wire`` (CRLF lines, dot-stuffed, ending with CRLF) with every line
    longer than ``limit`` octets broken into lines of at most ``limit``
    octets, each piece after the first starting with an inserted SPACE;
    ``limit`` <= 0 disables this; 1 acts as 2.

    The limit counts a stuffing dot (Postfix's does not), so a line never
    exceeds RFC 5321's 1,000 octets with the default of 998. A piece after
    the first starts with the inserted space, never with a "." that would
    need stuffing; a break falls inside a line, never inside its CRLF.
    When no line is too long (a scan of a few C calls per ``limit`` octets),
    ``wire`` itself is returned.
    """
    if limit <= 0:
        return wire
    # At least 2: a first piece of 1 could be the "." of a stuffed "..",
    # and a later piece needs a byte after its space. (Postfix loops on 1.)
    limit = max(limit, 2)
    if not has_long_line(wire, limit):
        return wire
    step = limit - 1            # bytes after the inserted space
    out = []
    for line in wire.split(b"\r\n"):
        if len(line) <= limit:
            out.append(line)
            continue
        out.append(line[:limit])
        out.extend(b" " + line[i:i + step] for i in range(limit, len(line), step))
    return b"\r\n".join(out)


def header_name(text: bytes) -> bytes | None:
    """The name of the header that *text* starts, or None (is_header.c).

    A name is printable ASCII other than ":"; obsolete blanks between the
    name and the colon are allowed ("Subject :").
    """
    colon = text.find(b":")
    if colon <= 0:
        return None
    name = text[:colon].rstrip(b" \t")
    if not name or name.translate(None, _NAME_OCTETS):   # something else left: not a name
        return None
    return name


# The octets of a header name: printable ASCII (a ":" ends the name).
_NAME_OCTETS = bytes(range(33, 127))

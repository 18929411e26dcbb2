"""Where a line of a message sits in its MIME structure, as Postfix's mime_state.c sees it.

Postfix's cleanup(8) reads a message one line at a time and keeps just enough
MIME state to tell four kinds of content apart, which is what decides the
table a line is checked against:

- primary message headers (header_checks),
- headers after a multipart boundary (mime_header_checks),
- headers at the start of an attached message/rfc822 part (nested_header_checks),
- everything else, boundaries included (body_checks).

MIME headers (Content-*, MIME-Version) go to mime_header_checks wherever they
are. This module is that state machine, ported rule for rule from
src/global/mime_state.c: a stack of open multipart boundaries (at most
``mime_nesting_limit`` deep, each kept to ``mime_boundary_length_limit``
bytes, so memory stays bounded whatever the input), the content type of the
current entity, and a state. It never decodes anything and never buffers a
line: the caller hands it header names, Content-Type values and body lines.
"""
from __future__ import annotations

import re

# Header classes: which table list a header is checked against.
PRIMARY = 0      # header_checks
MULTIPART = 1    # mime_header_checks (every header after a boundary; MIME headers anywhere)
NESTED = 2       # nested_header_checks
BODY = 3         # a state, not a header class: body lines (body_checks)

# Content types that matter to the structure (mime_state.c MIME_CTYPE_*/MIME_STYPE_*).
_OTHER, _TEXT, _MESSAGE, _MULTIPART = range(4)
_RFC822 = "rfc822"
_GLOBAL = "global"

# header_opts.c: the headers flagged HDR_OPT_MIME.
MIME_HEADERS = frozenset((b"content-description", b"content-disposition", b"content-id",
                          b"content-transfer-encoding", b"content-type", b"mime-version"))

# An RFC 2045 token or quoted string, and the separators between them
# (header_token() with the tspecials of mime_state.c).
_TOKEN = re.compile(rb'\s*(?:"((?:[^"\\]|\\.)*)"?|([^\s()<>@,;:\\"/\[\]?=]+)|(.))', re.S)


def _tokens(value: bytes) -> list[tuple[str, bytes]]:
    """("t", token) / ("q", quoted) / ("s", separator) items of a Content-Type value."""
    out = []
    for match in _TOKEN.finditer(value):
        quoted, token, sep = match.groups()
        if quoted is not None:
            out.append(("q", re.sub(rb"\\(.)", rb"\1", quoted)))
        elif token is not None:
            out.append(("t", token))
        elif sep is not None:
            out.append(("s", sep))
    return out


class MimeState:
    """The MIME state of one message: which header class or body a line belongs to.

    ``state`` is PRIMARY, MULTIPART or NESTED while in a header block, BODY
    otherwise. ``body_offset`` counts the bytes of the current body segment
    before the line at hand (line ends count one byte), which is what
    ``body_checks_size_limit`` is compared with.
    """

    __slots__ = ("state", "ctype", "stype", "stack", "body_offset", "nesting_limit",
                 "boundary_limit", "disabled")

    def __init__(self, *, nesting_limit: int = 100, boundary_limit: int = 2048,
                 disabled: bool = False):
        self.state = PRIMARY
        self.ctype, self.stype = _TEXT, "plain"
        # Open boundaries, innermost last: (boundary, default ctype, default subtype).
        self.stack: list[tuple[bytes, int, str]] = []
        self.body_offset = 0
        self.nesting_limit = nesting_limit
        self.boundary_limit = boundary_limit
        self.disabled = disabled   # disable_mime_input_processing: headers, then body

    def header_class(self, name: bytes) -> int:
        """The class of a complete header named *name* (lower case) in the
        current header block.

        MIME headers are told by name alone (header_opts.c), so they go to
        mime_header_checks even with disable_mime_input_processing = yes.
        """
        if name in MIME_HEADERS:
            return MULTIPART
        return self.state

    def content_type(self, value: bytes) -> None:
        """Take note of a Content-Type header value (after the colon)."""
        if self.disabled:
            return
        tokens = _tokens(value)
        if not tokens or tokens[0][0] != "t":
            self.ctype = _OTHER
            return
        kind = tokens[0][1].lower()
        sub = tokens[2][1].lower().decode("ascii", "replace") \
            if len(tokens) >= 3 and tokens[1] == ("s", b"/") and tokens[2][0] == "t" else ""
        if kind == b"text":
            self.ctype, self.stype = _TEXT, sub
        elif kind == b"message":
            self.ctype, self.stype = _MESSAGE, sub
        elif kind == b"multipart":
            self.ctype = _MULTIPART
            default = (_MESSAGE, _RFC822) if sub == "digest" else (_TEXT, "plain")
            self._push_boundaries(tokens, default)
        else:
            self.ctype = _OTHER

    def _push_boundaries(self, tokens: list[tuple[str, bytes]],
                         default: tuple[int, str]) -> None:
        # Every boundary= parameter is pushed, as Postfix does, so that a second
        # (illegal) boundary cannot hide a part from the checks.
        for i in range(len(tokens) - 2):
            kind, text = tokens[i]
            if kind == "t" and text.lower() == b"boundary" and tokens[i + 1] == ("s", b"=") \
                    and tokens[i + 2][0] in "tq" and (i == 0 or tokens[i - 1] == ("s", b";")):
                if len(self.stack) < self.nesting_limit:
                    self.stack.append((tokens[i + 2][1][:self.boundary_limit], *default))

    def end_of_headers(self, empty: bool) -> None:
        """A line that is not a header ended the current header block.

        An *empty* line may open a nested message's headers; any other line
        (garbage in the header) goes straight to the body, as in Postfix.
        """
        self.body_offset = 0
        if not empty or self.disabled:
            self.state = BODY
        elif self.ctype == _MESSAGE and self.stype in (_RFC822, _GLOBAL):
            self._enter(NESTED, _TEXT, "plain")
        elif self.ctype == _MULTIPART:
            self._enter(BODY, _OTHER, "")
        else:
            self.state = BODY

    def body_line(self, line: bytes) -> None:
        """Follow a boundary, if *line* (a whole line, not a continuation) is one."""
        if not self.stack or not line.startswith(b"--"):
            return
        for depth in range(len(self.stack) - 1, -1, -1):
            boundary, def_ctype, def_stype = self.stack[depth]
            # Trailing text after the boundary is ignored, as in Postfix: MUAs add
            # some, and the kept boundary may have been truncated.
            if line.startswith(boundary, 2):
                del self.stack[depth + 1:]
                if line.startswith(b"--", 2 + len(boundary)):
                    self.stack.pop()
                    self._enter(BODY, _OTHER, "")
                else:
                    self._enter(MULTIPART, def_ctype, def_stype)
                return

    def _enter(self, state: int, ctype: int, stype: str) -> None:
        self.state, self.ctype, self.stype = state, ctype, stype
        if state == BODY:
            self.body_offset = 0

    @property
    def final(self) -> bool:
        """True once nothing later in the message can leave the body state."""
        return self.state == BODY and not self.stack

"""The DATA phase: find the end of the message, keep the content safe to relay.

The only end of data is CRLF "." CRLF (or "." CRLF as the very first line).
Content is handed on in *wire form*: CRLF-terminated lines, still
dot-stuffed as received, without the final ".\\r\\n". relayd stores and later
transmits that form unchanged, so every chunk keeps this invariant: the
concatenation of all chunks, followed by ".\\r\\n", is one valid DATA
transmission without bare CR, bare LF, NUL, or a "." line before the end.

Clean input costs a few C-speed scans per chunk (``find``/``count``); only a
chunk with something unusual goes through the line-by-line repair:

* bare LF ends a line and becomes CRLF (smtpd_forbid_bare_newline = normalize
  or no); with ``reject`` the message is refused at its end with
  ``550 5.5.2 <host> Error: bare <LF> received`` (Postfix's delayed reject).
* a lone "." line that ends in a bare LF, or follows a line that did, is
  dropped, as Postfix does: it is neither content nor the end of data, so
  "\\n.\\n", "\\r\\n.\\n" and "\\n.\\r\\n" cannot smuggle a second message.
* bare CR (not followed by LF) and NUL are neutralised: each becomes one
  space, never refused ("\\r.\\r" and ".\\r\\r\\n" stay ordinary content).
"""
from __future__ import annotations

import enum

from relayd.smtp.events import DataChunk, DataEnd
from relayd.smtp.replies import R552_MESSAGE_TOO_BIG, Reply
from relayd.smtp.wireform import crlf_newlines_only

_END_OF_DATA = b"\r\n.\r\n"
_FIRST_LINE_END = b".\r\n"
_NEUTRAL = bytes.maketrans(b"\r\0", b"  ")
_END = object()  # what _take() returns for the end of data


class _Start(enum.Enum):
    """Where the unread input begins, relative to the lines already read."""

    AFTER_CRLF = 1       # a line start where "." CRLF ends the data
    AFTER_BARE_LF = 2    # a line start, but the previous line ended in bare LF
    MID_LINE = 3         # inside a long line that was handed on in parts


class DataReader:
    """Reads one message from a receive buffer (see the module docstring).

    ``bare_lf_error`` is the reply for a bare LF when bare newlines are
    rejected, or None to normalise them. ``message_size_limit`` (0 = none)
    bounds the unstuffed size; past it, content is discarded and the end
    reports R552_MESSAGE_TOO_BIG. A line longer than ``max_line`` without its
    end is handed on in parts, so the buffer stays bounded.
    """

    def __init__(self, *, message_size_limit: int, max_line: int,
                 bare_lf_error: Reply | None) -> None:
        self.size = 0
        self.error: Reply | None = None
        self._limit = message_size_limit
        self._max_line = max_line
        self._bare_lf_error = bare_lf_error
        self._start = _Start.AFTER_CRLF

    def next_event(self, buf: bytearray) -> DataChunk | DataEnd | None:
        """Consume from ``buf``: the next chunk, the end, or None (need data)."""
        while True:
            piece = self._take(buf)
            if piece is None:
                return None
            if piece is _END:
                return DataEnd(self.size, self.error)
            chunk = self._content(piece)
            if chunk is not None:
                return chunk

    def _take(self, buf: bytearray) -> bytes | object | None:
        """Cut the next piece of whole lines (or the end marker) off ``buf``."""
        if self._start is _Start.AFTER_CRLF:
            if buf[:3] == _FIRST_LINE_END:
                del buf[:3]
                return _END
            if len(buf) < 3 and _FIRST_LINE_END.startswith(buf):
                return None
        end = buf.find(_END_OF_DATA)
        if end >= 0:
            cut = end + 2  # keep the CRLF; ".\r\n" is then at a line start
        else:
            # Keep an incomplete last line: it may be the start of the marker.
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                if len(buf) <= self._max_line:
                    return None
                # A CR at the very end may be the first half of a CRLF.
                cut = len(buf) - 1 if buf[-1] == 0x0D else len(buf)
        piece = bytes(buf[:cut])
        del buf[:cut]
        return piece

    def _content(self, piece: bytes) -> DataChunk | None:
        """Wire form of ``piece``, or None when there is none (the message is
        being refused, or the repair left nothing)."""
        line_start = self._start is not _Start.MID_LINE
        clean = (self._start is not _Start.AFTER_BARE_LF and b"\0" not in piece
                 and crlf_newlines_only(piece))
        wire = piece if clean else self._repair(piece, line_start)
        if piece.endswith(b"\r\n"):
            self._start = _Start.AFTER_CRLF
        elif piece.endswith(b"\n"):
            self._start = _Start.AFTER_BARE_LF
        else:
            self._start = _Start.MID_LINE
        # Every line that starts with "." lost that dot to unstuffing.
        self.size += len(wire)
        if b"." in wire:   # memchr first: most of a large message (base64) has no dot
            self.size -= wire.count(b"\n.") + (line_start and wire[:1] == b".")
        if self.error is None and 0 < self._limit < self.size:
            self.error = R552_MESSAGE_TOO_BIG
        return DataChunk(wire, clean) if self.error is None and wire else None

    def _repair(self, piece: bytes, line_start: bool) -> bytes:
        """The slow path: normalise line ends, drop smuggled dots, neutralise CR/NUL."""
        lines = piece.split(b"\n")
        out = []
        prev_bare = self._start is _Start.AFTER_BARE_LF
        for index, line in enumerate(lines[:-1]):
            bare = not line.endswith(b"\r")
            body = line if bare else line[:-1]
            if bare and self._bare_lf_error is not None and self.error is None:
                self.error = self._bare_lf_error
            if body == b"." and (index or line_start) and (bare or prev_bare):
                prev_bare = bare
                continue
            out.append(body.translate(_NEUTRAL) + b"\r\n")
            prev_bare = bare
        out.append(lines[-1].translate(_NEUTRAL))
        return b"".join(out)

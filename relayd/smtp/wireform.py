"""The stored-form invariant: what the queue accepts as a message's content.

:class:`StoredForm` is the invariant every message meets before it is
committed to the queue: its stored form followed by ".\\r\\n" is exactly one
DATA transmission (see its docstring); :func:`stored_form_problem` is the same
check on a whole buffer, for tests and fuzz harnesses. It is a rule about
bytes only, so it lives with the protocol core: cleanup(8) produces content
that meets it, and the queue's content writer checks every byte against it
whoever writes (SMTP sessions, forwarded copies, DSNs).
"""
from __future__ import annotations

import re

# A bare CR or LF, for locating one after the scan said there is one.
_BARE_NEWLINE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_LONE_DOT = b"\r\n.\r\n"


def crlf_newlines_only(data: bytes, start: int = 0, stop: int | None = None) -> bool:
    """Whether, in ``data[start:stop]``, every CR is directly followed by LF and
    every LF directly preceded by CR: three C-speed counts (as many CRs as LFs
    as CRLF pairs), where anything that keeps the CRs and LFs but not their
    order (a filter of the newline octets) would pass "a\\rb\\nc"."""
    if stop is None:
        stop = len(data)
    pairs = data.count(b"\r\n", start, stop)
    return data.count(b"\n", start, stop) == pairs == data.count(b"\r", start, stop)


class StoredForm:
    """The stored-form invariant, checked incrementally as content is written.

    The stored form must be empty or CRLF-terminated lines with no bare CR, no
    bare LF, no NUL, and no line that is a lone "." (a line that starts with a
    dot is read as stuffed by the next hop; a lone "." would end the DATA
    there and let the rest run as SMTP commands). Then the stored form followed
    by ".\\r\\n" is exactly one DATA transmission. Clean input costs
    three C-speed counts per chunk, and a search for a lone "." when the
    chunk has a dot at all; the state between chunks is the last four octets.
    """

    __slots__ = ("problem", "_tail", "_size")

    def __init__(self) -> None:
        self.problem: str | None = None
        self._tail = b"\r\n"   # as if after a line end: a first line "." is caught too
        self._size = 0

    def feed(self, chunk: bytes, checked: bool = False) -> bool:
        """Check the next *chunk* of the stream; False once the stream is bad.

        ``checked``: the chunk's own bytes already passed this check where they
        were made (the DATA reader's clean input,
        :class:`~relayd.smtp.events.DataChunk`), so only its junction with
        what came before is looked at."""
        if self.problem is None and chunk:
            self.problem = self._check(chunk, checked)
            self._tail = (self._tail + chunk[-4:])[-4:]
            self._size += len(chunk)
        return self.problem is None

    def finish(self) -> str | None:
        """None when the whole stream met the invariant, else what is wrong."""
        if self.problem is None and self._size and not self._tail.endswith(b"\r\n"):
            self.problem = f"no line end at the end (octet {self._size})"
        return self.problem

    def _check(self, chunk: bytes, checked: bool) -> str | None:
        at = self._size
        # A lone "." across the junction with what came before.
        found = (self._tail + chunk[:4]).find(_LONE_DOT)
        if found >= 0:
            return f'a lone "." line at octet {max(at - len(self._tail) + found + 2, 0)}'
        if checked:
            return self._junction(chunk, at)[1]
        if b"\0" in chunk:   # memchr: a clean chunk costs next to nothing here
            return f"NUL at octet {at + chunk.find(0)}"
        if b"." in chunk:    # likewise: no dot, no lone "." line
            found = chunk.find(_LONE_DOT)
            if found >= 0:
                return f'a lone "." line at octet {at + found + 2}'
        start, problem = self._junction(chunk, at)
        if problem is not None:
            return problem
        # A CR at the very end is judged with the next chunk's first octet.
        stop = len(chunk) - 1 if chunk.endswith(b"\r") else len(chunk)
        if not crlf_newlines_only(chunk, start, stop):
            bare = _BARE_NEWLINE.search(chunk, start, stop)
            kind = "CR" if bare.group() == b"\r" else "LF"
            return f"bare {kind} at octet {at + bare.start()}"
        return None

    def _junction(self, chunk: bytes, at: int) -> tuple[int, str | None]:
        """A CR at the end of what came before needs an LF to start *chunk*, and
        an LF starting it needs that CR: where the chunk's own octets start, or
        the problem."""
        if self._tail.endswith(b"\r"):
            if not chunk.startswith(b"\n"):
                return 0, f"bare CR at octet {at - 1}"
            return 1, None
        if chunk.startswith(b"\n"):
            return 0, f"bare LF at octet {at}"
        return 0, None


def stored_form_problem(data: bytes) -> str | None:
    """What is wrong with *data* as a whole stored form, or None when it is
    exactly one DATA transmission's content (:class:`StoredForm`)."""
    form = StoredForm()
    form.feed(data)
    return form.finish()

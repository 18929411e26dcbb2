"""What cleanup(8) does to a message on its way into the queue.

For the core path: the Received: header relayd prepends, sanitising of the
client-supplied names that go into it, and the scan of the incoming header
block for the hop count (hopcount_limit) and the Message-ID that the log
shows. Content stays in SMTP wire form (CRLF, dot-stuffed) throughout, so a
prepended header must never start with a dot, and never does.

:class:`StoredForm` is the invariant every message meets before it is
committed to the queue: its stored form followed by ".\\r\\n" is exactly one
DATA transmission (see its docstring); :func:`stored_form_problem` is the same
check on a whole buffer, for tests and fuzz harnesses.
"""
from __future__ import annotations

import re
import time
from email.utils import formatdate

# Characters allowed into a Received: header from a client-supplied name;
# anything else (CR, LF, parentheses, control bytes, 8-bit) becomes "?",
# so that EHLO cannot inject a header line or unbalance the comment.
_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]@+=]")
_MAX_NAME = 255

# The header block ends at the first empty line; the scan looks at no more of
# it than header_size_limit bytes (Postfix's default below).
HEADER_SIZE_LIMIT = 102400
_RECEIVED = re.compile(rb"(?im)^received:")
_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*([^\r\n]*)")


def sanitize(name: str) -> str:
    """A client-supplied name made safe for a header comment."""
    return _UNSAFE.sub("?", name[:_MAX_NAME]) or "?"


_date_cache: list = [-1, ""]


def rfc2822_date(now: float) -> str:
    """``formatdate(now, localtime=True)``, computed once a second."""
    second = int(now)
    if _date_cache[0] != second:
        _date_cache[:] = [second, formatdate(second, localtime=True)]
    return _date_cache[1]


def received_header(*, helo: str, client_name: str, client_addr: str, myhostname: str,
                    mail_name: str, protocol: str, queue_id: str, recipients: list[str],
                    now: float | None = None) -> bytes:
    """The Received: header as Postfix's cleanup writes it, in wire form."""
    addr = f"IPv6:{client_addr}" if ":" in client_addr else client_addr
    lines = [f"Received: from {sanitize(helo or client_name)} "
             f"({sanitize(client_name)} [{addr}])",
             f"\tby {myhostname} ({mail_name}) with {protocol} id {queue_id}"]
    date = rfc2822_date(time.time() if now is None else now)
    if len(recipients) == 1:
        lines.append(f"\tfor <{sanitize(recipients[0])}>; {date}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")


class HeaderScan:
    """Collects the header block of a message as its chunks stream past: its
    first ``limit`` bytes at most, so that the results never depend on where
    the reads cut the stream.

    ``feed`` is cheap once the block is complete: the body is never looked at.
    """

    __slots__ = ("_buf", "_limit", "done")

    def __init__(self, limit: int = HEADER_SIZE_LIMIT) -> None:
        self._buf = bytearray()
        self._limit = limit
        self.done = False

    def feed(self, chunk: bytes) -> None:
        if self.done:
            return
        start = max(0, len(self._buf) - 3)
        self._buf += chunk
        if self._buf.startswith(b"\r\n"):
            del self._buf[:]
            self.done = True
            return
        end = self._buf.find(b"\r\n\r\n", start)
        if end >= 0:
            # The same cut as below when the end lies past the limit in this read.
            del self._buf[min(end + 2, self._limit):]
            self.done = True
        elif len(self._buf) >= self._limit:
            del self._buf[self._limit:]
            self.done = True

    @property
    def hop_count(self) -> int:
        """How many Received: headers the message already has."""
        return len(_RECEIVED.findall(self._buf))

    @property
    def message_id(self) -> str:
        m = _MESSAGE_ID.search(self._buf)
        return m.group(1).strip().decode("utf-8", "replace") if m else ""


# A bare CR or LF, for locating one after the scan said there is one.
_BARE_NEWLINE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_LONE_DOT = b"\r\n.\r\n"
# Every octet the invariant is not about: deleted by bytes.translate, so what
# is left of a chunk (its CR, LF, "." and NUL) is small and quick to judge.
_ORDINARY = bytes(sorted(set(range(256)) - set(b"\r\n.\0")))


class StoredForm:
    """The stored-form invariant, checked incrementally as content is written.

    The stored form must be empty or CRLF-terminated lines with no bare CR, no
    bare LF, no NUL, and no line that is a lone "." (a line that starts with a
    dot is read as stuffed by the next hop; a lone "." would end the DATA
    there and let the rest run as SMTP commands). Then the stored form followed
    by ".\\r\\n" is exactly one DATA transmission. Clean input costs one
    C-speed pass per chunk (bytes.translate keeps only CR, LF, "." and NUL)
    and small work on what it keeps; the state between chunks is the last
    four octets.
    """

    __slots__ = ("problem", "_tail", "_size")

    def __init__(self) -> None:
        self.problem: str | None = None
        self._tail = b"\r\n"   # as if after a line end: a first line "." is caught too
        self._size = 0

    def feed(self, chunk: bytes) -> bool:
        """Check the next *chunk* of the stream; False once the stream is bad."""
        if self.problem is None and chunk:
            self.problem = self._check(chunk)
            self._tail = (self._tail + chunk[-4:])[-4:]
            self._size += len(chunk)
        return self.problem is None

    def finish(self) -> str | None:
        """None when the whole stream met the invariant, else what is wrong."""
        if self.problem is None and self._size and not self._tail.endswith(b"\r\n"):
            self.problem = f"no line end at the end (octet {self._size})"
        return self.problem

    def _check(self, chunk: bytes) -> str | None:
        at = self._size
        # A lone "." across the junction with what came before.
        found = (self._tail + chunk[:4]).find(_LONE_DOT)
        if found >= 0:
            return f'a lone "." line at octet {max(at - len(self._tail) + found + 2, 0)}'
        marks = chunk.translate(None, _ORDINARY)
        if b"\0" in marks:
            nul = chunk.find(b"\0")
            return f"NUL at octet {at + nul}"
        # Only a candidate ("x.y" CRLF leaves CRLF "." CRLF too): look in the chunk.
        if _LONE_DOT in marks:
            found = chunk.find(_LONE_DOT)
            if found >= 0:
                return f'a lone "." line at octet {at + found + 2}'
        newlines = marks.replace(b".", b"") if b"." in marks else marks
        start = 0
        if self._tail.endswith(b"\r"):
            if not chunk.startswith(b"\n"):
                return f"bare CR at octet {at - 1}"
            start = 1
        elif chunk.startswith(b"\n"):
            return f"bare LF at octet {at}"
        stop = len(newlines) - 1 if chunk.endswith(b"\r") else len(newlines)
        if (stop - start) % 2 or newlines.count(b"\r\n", start, stop) * 2 != stop - start:
            end = len(chunk) - 1 if chunk.endswith(b"\r") else len(chunk)
            bare = _BARE_NEWLINE.search(chunk, start, end)
            kind = "CR" if bare.group() == b"\r" else "LF"
            return f"bare {kind} at octet {at + bare.start()}"
        return None


def stored_form_problem(data: bytes) -> str | None:
    """What is wrong with *data* as a whole stored form, or None when it is
    exactly one DATA transmission's content (:class:`StoredForm`)."""
    form = StoredForm()
    form.feed(data)
    return form.finish()

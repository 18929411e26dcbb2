"""What cleanup(8) does to a message on its way into the queue.

For the core path: the Received: header relayd prepends, sanitising of the
client-supplied names that go into it, and the scan of the incoming header
block for the hop count (hopcount_limit) and the Message-ID that the log
shows. Content stays in SMTP wire form (CRLF, dot-stuffed) throughout, so a
prepended header must never start with a dot, and never does.
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

# The header block ends at the first empty line; Postfix stops looking for
# headers after header_size_limit (102400) bytes.
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
    """Collects the header block of a message as its chunks stream past.

    ``feed`` is cheap once the block is complete: the body is never looked at.
    """

    __slots__ = ("_buf", "done")

    def __init__(self) -> None:
        self._buf = bytearray()
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
            del self._buf[end + 2:]
            self.done = True
        elif len(self._buf) >= HEADER_SIZE_LIMIT:
            del self._buf[HEADER_SIZE_LIMIT:]
            self.done = True

    @property
    def hop_count(self) -> int:
        """How many Received: headers the message already has."""
        return len(_RECEIVED.findall(self._buf))

    @property
    def message_id(self) -> str:
        m = _MESSAGE_ID.search(self._buf)
        return m.group(1).strip().decode("utf-8", "replace") if m else ""

"""The Received: header cleanup(8) prepends, and the sanitising of the
client-supplied names that go into it. Content stays in SMTP wire form (CRLF,
dot-stuffed) throughout, so a prepended header must never start with a dot,
and never does.
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
                    now: float | None = None, tls_comment: tuple[str, ...] = (),
                    sasl_username: str = "") -> bytes:
    """The Received: header as Postfix's cleanup writes it, in wire form;
    ``tls_comment``: lines after "from" (smtpd_tls_received_header);
    ``sasl_username``: the login smtpd_sasl_authenticated_header shows, or ""."""
    addr = f"IPv6:{client_addr}" if ":" in client_addr else client_addr
    lines = [f"Received: from {sanitize(helo or client_name)} "
             f"({sanitize(client_name)} [{addr}])", *tls_comment,
             *((f"\t(Authenticated sender: {sanitize(sasl_username)})",) if sasl_username else ()),
             f"\tby {myhostname} ({mail_name}) with {protocol} id {queue_id}"]
    date = rfc2822_date(time.time() if now is None else now)
    if len(recipients) == 1:
        lines.append(f"\tfor <{sanitize(recipients[0])}>; {date}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")

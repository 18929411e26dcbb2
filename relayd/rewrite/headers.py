"""Address rewriting in the primary message headers, as cleanup(8) and smtp(8) do it.

On the way in (cleanup_message.c) the addresses in sender headers (From,
Sender, Reply-To, ...) and recipient headers (To, Cc, Bcc, ...) go through
qualification, ``sender_canonical_maps`` / ``recipient_canonical_maps``,
``canonical_maps`` and masquerading, each only for the header classes its
``*_classes`` parameter names. Postfix does this only when the client
matches ``local_header_rewrite_clients``, or, for any other client, when
``remote_header_rewrite_domain`` is set (unqualified addresses then get that
domain instead of ``$myorigin``). On the way out (smtp_proto.c) the same
headers go through ``smtp_generic_maps``.

Only the address itself is replaced: display names, comments, groups and the
client's line folding stay as they were, and a header with no changed address
is passed on byte for byte. MIME part headers and the body are never touched.
The stream is SMTP wire form (CRLF, dot-stuffed); header lines are never
dot-stuffed (a line starting with "." is not a header and ends the block).
"""
from __future__ import annotations

from typing import Callable

from relayd.config import ConfigError
from relayd.config.derived import PerConfig
from relayd.content.mime import header_name
from relayd.domains import Interfaces
from relayd.networks import NetworkList
from relayd.rewrite.canonical import HEADER_RECIPIENT, HEADER_SENDER, Canonical
from relayd.rewrite.generic import GenericMaps
from relayd.rewrite.maps import qualify
from relayd.tables.base import TemporaryLookupError

# header_opts.c: the headers flagged HDR_OPT_SENDER and HDR_OPT_RECIP.
SENDER_HEADERS = frozenset((
    "disposition-notification-to", "errors-to", "from", "mail-followup-to", "reply-to",
    "resent-from", "resent-sender", "return-path", "return-receipt-to", "sender"))
# Resent-Reply-To is a recipient header in header_opts.c, odd as it looks.
RECIPIENT_HEADERS = frozenset((
    "apparently-to", "bcc", "cc", "resent-bcc", "resent-cc", "resent-reply-to", "resent-to",
    "to"))

LOCAL_CONTEXT, REMOTE_CONTEXT = "local", "remote"

# Clients relayd's smtpd can never tell apart: it offers neither AUTH nor STARTTLS.
_NEVER_MATCHING = ("permit_sasl_authenticated", "permit_tls_clientcerts",
                   "permit_tls_all_clientcerts")
_SPECIALS = '()<>@,;:\\".[]'

AddressRewrite = Callable[[str, str], str]   # (address, header class) -> address


# --- finding the addresses in a header value ----------------------------------------

def _skip_quoted(value: str, i: int, close: str) -> int:
    """The index after the quoted string (close '"') or domain literal (']') at
    ``i``; past ``len(value)`` when it is not closed."""
    i += 1
    while i < len(value) and value[i] != close:
        i += 2 if value[i] == "\\" else 1
    return i + 1


def _skip_comment(value: str, i: int) -> int:
    """The index after the (possibly nested) comment that opens at ``i``."""
    depth = 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            i += 2
            continue
        depth += c == "("
        depth -= c == ")"
        i += 1
        if depth == 0:
            break
    return i


def _angle_span(value: str, i: int) -> tuple[int, int, int]:
    """For "<" at ``i``: the span of the addr-spec inside (after any source
    route, whitespace trimmed) and the index after the closing ">"."""
    j = i + 1
    colon = -1
    while j < len(value) and value[j] != ">":
        if value[j] == '"':
            j = _skip_quoted(value, j, '"')
            continue
        if value[j] == ":" and value[i + 1:j].lstrip().startswith("@"):
            colon = j
        j += 1
    if j >= len(value):
        return i + 1, i + 1, len(value)   # no ">": no address to guess at
    start = (colon if colon >= 0 else i) + 1
    end = j
    while start < end and value[start] in " \t\r\n":
        start += 1
    while end > start and value[end - 1] in " \t\r\n":
        end -= 1
    return start, end, j + 1


def address_spans(value: str) -> list[tuple[int, int]]:
    """Where the addr-specs of an address-list header value are: ``<addr>``
    forms and bare ``addr (comment)`` forms, inside groups too. A bare form
    whose address has blanks, comments or a backslash inside, and anything
    with an unclosed quote, "<" or "[", is left out (no guessing)."""
    spans: list[tuple[int, int]] = []
    first = last = -1     # the bare tokens of the current list element
    angled = False
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            i = _skip_comment(value, i)
        elif c == "<":
            start, end, i = _angle_span(value, i)
            if end > start:
                spans.append((start, end))
            angled = True
        elif c in ",;:":
            if c != ":" and not angled and first >= 0:
                spans.append((first, last))
            first = last = -1   # ":" opens a group: what came before was its name
            angled = False
            i += 1
        else:
            if c in '"[':
                end = _skip_quoted(value, i, '"' if c == '"' else "]")
            elif c in _SPECIALS:
                end = i + 1
            else:
                end = i
                while end < n and value[end] not in _SPECIALS and value[end] not in " \t\r\n":
                    end += 1
            first = i if first < 0 else first
            last = end   # past n: an unclosed quote or literal, never an address
            i = end
    if not angled and first >= 0:
        spans.append((first, last))
    return [(s, e) for s, e in spans if e <= n and _contiguous(value[s:e])]


def _contiguous(text: str) -> bool:
    """No blank or comment outside quotes and every quote closed: one address,
    not a phrase or a fragment."""
    i = 0
    while i < len(text):
        if text[i] == '"':
            i = _skip_quoted(text, i, '"')
            if i > len(text):
                return False
        elif text[i] in " \t\r\n(\\":
            return False
        else:
            i += 1
    return True


def _internal(address: str) -> str:
    """``"john doe"@example.com`` -> ``john doe@example.com`` (the lookup form)."""
    local, at, domain = address.rpartition("@") if "@" in address else (address, "", "")
    if local.startswith('"') and local.endswith('"') and len(local) > 1:
        local = "".join(p[1:] if p.startswith("\\") else p
                        for p in _escapes(local[1:-1]))
    return f"{local}{at}{domain}"


def _escapes(text: str) -> list[str]:
    out, i = [], 0
    while i < len(text):
        step = 2 if text[i] == "\\" else 1
        out.append(text[i:i + step])
        i += step
    return out


def _external(address: str) -> str:
    """The lookup form back in header syntax: a local part that needs quotes gets them."""
    local, at, domain = address.rpartition("@") if "@" in address else (address, "", "")
    atoms = local.split(".")
    if all(a and not any(ch in _SPECIALS or ch in " \t" or ord(ch) < 32 for ch in a)
           for a in atoms):
        return address
    quoted = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}"{at}{domain}'


def rewrite_value(value: str, rewrite: Callable[[str], str]) -> str | None:
    """``value`` with every address replaced by ``rewrite(address)``; None when
    no address changed (the header is then passed on as it was)."""
    changed = False
    parts: list[str] = []
    done = 0
    for start, end in address_spans(value):
        original = _internal(value[start:end])
        new = rewrite(original)
        if new == original:
            continue
        parts += [value[done:start], _external(new)]
        done = end
        changed = True
    if not changed:
        return None
    parts.append(value[done:])
    return "".join(parts)


def rewrite_header(raw: bytes, rewrite: AddressRewrite) -> bytes:
    """One whole header (all its lines, CRLF included) with its addresses
    rewritten when it is a sender or recipient header; ``raw`` otherwise."""
    colon = raw.find(b":")
    name = raw[:colon].rstrip(b" \t").decode("ascii", "replace").lower()
    if name in SENDER_HEADERS:
        address_class = HEADER_SENDER
    elif name in RECIPIENT_HEADERS:
        address_class = HEADER_RECIPIENT
    else:
        return raw
    # The header's own line ending is never part of an address (an unclosed
    # quote would take it in); it goes back on unchanged.
    end = len(raw) - 2 if raw.endswith(b"\r\n") else len(raw)
    # surrogateescape: 8-bit text (UTF-8 or not) comes back out byte for byte.
    value = raw[colon + 1:end].decode("utf-8", "surrogateescape")
    new = rewrite_value(value, lambda address: rewrite(address, address_class))
    if new is None:
        return raw
    new_value = new.encode("utf-8", "surrogateescape")
    if not _same_lines(new_value):
        return raw   # a rewrite must never end the header or start a new one
    return raw[:colon + 1] + new_value + raw[end:]


def _same_lines(value: bytes) -> bool:
    """Every CR and LF in a header ``value`` is a fold: CRLF then SP or HT."""
    folds = value.count(b"\r\n ") + value.count(b"\r\n\t")
    return value.count(b"\r") == folds and value.count(b"\n") == folds


# --- streaming over the primary header block ----------------------------------------

class HeaderStream:
    """Passes a message through, handing each whole header of the primary
    header block to ``rewrite_header``; everything after the block goes out
    untouched. Holds back at most one header (or ``size_limit`` bytes, past
    which the header goes out unrewritten)."""

    __slots__ = ("rewrite", "size_limit", "size_delta", "error", "_done", "_tail", "_header",
                 "_held")

    def __init__(self, rewrite: AddressRewrite, size_limit: int = 102400):
        self.rewrite = rewrite
        self.size_limit = size_limit
        self.size_delta = 0       # octets the rewriting added (negative: removed)
        self.error: TemporaryLookupError | None = None
        self._done = False
        self._tail = b""                  # an incomplete line
        self._header: list[bytes] = []    # the lines of the pending header
        self._held = 0

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to pass on for ``chunk`` (what is held back comes later).
        A table that cannot answer stops the rewriting; :meth:`finish` raises
        its TemporaryLookupError (a DATA chunk is no time to answer)."""
        if self._done:
            return chunk
        data = self._tail + chunk if self._tail else chunk
        self._tail = b""
        out: list[bytes] = []
        pos = 0
        while not self._done:
            nl = data.find(b"\r\n", pos)
            if nl < 0:
                break
            try:
                self._line(data[pos:nl + 2], out)
            except TemporaryLookupError as exc:
                self.error = exc
                self._give_up(out)   # the line at pos goes out with the rest, below
                break
            pos = nl + 2
        if self._done:
            out.append(data[pos:])
            self._tail = b""
        else:
            self._tail = data[pos:]
            if len(self._tail) + self._held > self.size_limit:
                self._give_up(out)
        return b"".join(out)

    def finish(self) -> bytes:
        """Whatever is still held back, at the end of the message.
        TemporaryLookupError: the message must not be accepted now."""
        if self.error is not None:
            raise self.error
        out: list[bytes] = []
        if self._header:
            out.append(self._complete())
        out.append(self._tail)
        self._tail = b""
        self._done = True
        return b"".join(out)

    def _line(self, line: bytes, out: list[bytes]) -> None:
        if self._header and line[:1] in (b" ", b"\t"):
            self._header.append(line)
            self._held += len(line)
            if self._held > self.size_limit:
                self._give_up(out)
            return
        if self._header:
            out.append(self._complete())
        if header_name(line) is None:
            self._done = True     # the empty line, or body text without one
            out.append(line)
        else:
            self._header = [line]
            self._held = len(line)

    def _complete(self) -> bytes:
        raw = b"".join(self._header)
        new = rewrite_header(raw, self.rewrite)
        self._header, self._held = [], 0
        self.size_delta += len(new) - len(raw)
        return new

    def _give_up(self, out: list[bytes]) -> None:
        """A header too big to hold, or a failed lookup: pass the rest of the
        message on as it is."""
        out.extend(self._header)
        out.append(self._tail)
        self._header, self._held, self._tail = [], 0, b""
        self._done = True


# --- cleanup: canonical maps and masquerading ----------------------------------------

class LocalHeaderClients:
    """local_header_rewrite_clients: the clients whose headers are rewritten
    in the "local" context."""

    def __init__(self, config):
        self.everyone = False
        self.networks: list[NetworkList] = []
        parameter = "local_header_rewrite_clients"
        for item in config[parameter]:
            key = item.lower()
            if key == "permit_inet_interfaces":
                self.networks.append(_inet_interfaces(config))
            elif key == "permit_mynetworks":
                self.networks.append(NetworkList(config["mynetworks"]))
            elif key == "static:all":
                self.everyone = True
            elif key not in _NEVER_MATCHING:
                raise ConfigError(f"unsupported item {item!r} (relayd knows permit_inet_interfaces,"
                                  f" permit_mynetworks, static:all)", parameter=parameter)

    def __contains__(self, client_addr: str) -> bool:
        return self.everyone or any(client_addr in nets for nets in self.networks)


def _inet_interfaces(config) -> NetworkList:
    """The addresses permit_inet_interfaces matches (relayd.domains.Interfaces)."""
    interfaces = Interfaces(config)
    if interfaces.hostnames():
        raise ConfigError(f"inet_interfaces: host name {interfaces.hostnames()[0]!r} is not "
                          f"supported for permit_inet_interfaces",
                          parameter="local_header_rewrite_clients")
    return NetworkList(interfaces.own_addresses(), parameter="local_header_rewrite_clients")


class HeaderRules(PerConfig):
    """What header rewriting needs from one configuration; tables are opened
    once per configuration (:meth:`of`)."""

    def __init__(self, config):
        self.canonical = Canonical(config)
        self.local_clients = LocalHeaderClients(config)
        self.myorigin = config["myorigin"].lower()
        self.remote_domain = config["remote_header_rewrite_domain"].lower()
        self.size_limit = config["header_size_limit"]

    def context(self, client_addr: str | None) -> str | None:
        """LOCAL_CONTEXT, REMOTE_CONTEXT, or None: headers are not rewritten."""
        if client_addr is None or client_addr in self.local_clients:
            return LOCAL_CONTEXT
        return REMOTE_CONTEXT if self.remote_domain else None


# Octets that neither half of an addr-spec may hold in the common header below
# (blanks, CR and LF among them), and those a display name may not hold.
_ADDR_SPECIALS = b'<>,@"()\\ \t\n\r\f\v'
_PHRASE_SPECIALS = b'<>,@"()\\:;\r\n'


def _free_of(part: bytes, specials: bytes) -> bool:
    """*part* is not empty and holds none of *specials* (one C-speed pass)."""
    return bool(part) and len(part.translate(None, specials)) == len(part)


def _one_qualified(line: bytes) -> bool:
    """One line, one address that has a domain, no comments, quotes or groups:
    "From: <a@example.com>", "To: Bob Smith <bob@example.com>", "Cc: c@example.com".
    Such a header needs no rewriting when only qualification could change it.
    Plain scans, linear in the line: a client's header must never cost more."""
    if not line.endswith(b"\r\n") or line.count(b"\n") != 1 or line.count(b"\r") != 1:
        return False
    colon = line.find(b":")
    if colon < 1:
        return False
    value = line[colon + 1:-2].strip(b" \t")
    local_specials = _ADDR_SPECIALS + b":;"     # a bare address: no ":" or ";" before "@"
    if value.endswith(b">"):
        lt = value.find(b"<")
        if lt < 0 or (lt and not _free_of(value[:lt], _PHRASE_SPECIALS)):
            return False
        value, local_specials = value[lt + 1:-1], _ADDR_SPECIALS
    local, _, domain = value.partition(b"@")
    return _free_of(local, local_specials) and _free_of(domain, _ADDR_SPECIALS)


class HeaderRewriter(HeaderStream):
    """cleanup(8)'s header address rewriting for one message.

    ``active`` is False when Postfix would leave this client's headers alone;
    the session then does not feed it at all.
    """

    __slots__ = ("active", "canonical", "origin", "qualify_only")

    def __init__(self, rules: HeaderRules, context: str | None):
        super().__init__(self._address, rules.size_limit)
        self.active = context is not None
        self.canonical = rules.canonical
        self.origin = rules.myorigin if context == LOCAL_CONTEXT else rules.remote_domain
        # Without canonical maps or masquerading only bare addresses change.
        self.qualify_only = not rules.canonical.rewrites_anything

    @classmethod
    def from_config(cls, config, client_addr: str | None = None) -> "HeaderRewriter":
        """The rewriter for one message from ``client_addr`` (None: a local
        submission, always the "local" context). ConfigError for a bad table
        or local_header_rewrite_clients item."""
        rules = HeaderRules.of(config)
        return cls(rules, rules.context(client_addr))

    def _complete(self) -> bytes:
        if self.qualify_only and len(self._header) == 1 and _one_qualified(self._header[0]):
            raw = self._header[0]  # the common header that needs nothing
            self._header, self._held = [], 0
            return raw
        return super()._complete()

    def _address(self, address: str, address_class: str) -> str:
        if not address:
            return address
        address = qualify(address, self.origin)
        if address_class == HEADER_SENDER:
            return self.canonical.sender(address, address_class)
        return self.canonical.recipient(address, address_class)


# --- smtp(8): smtp_generic_maps --------------------------------------------------------

def rewrite_generic_headers(content: bytes, generic: GenericMaps) -> bytes:
    """Queued ``content`` (wire form) with smtp_generic_maps applied to the
    addresses of its primary sender and recipient headers; ``content`` itself
    when no map is configured. TemporaryLookupError passes."""
    if not generic:
        return content
    stream = HeaderStream(lambda address, _class: generic.rewrite(address))
    out = stream.feed(content) + stream.finish()
    return content if out == content else out

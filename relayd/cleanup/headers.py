"""The headers of a message's primary header block, as cleanup(8) and smtp(8) treat them.

cleanup's one parser (:class:`~relayd.cleanup.checker.ContentChecker`) hands
each header of the primary block to a :class:`PrimaryHeaders`, which counts
the Received: headers (hopcount_limit), notes the Message-ID the log shows
and, when the client's headers are to be rewritten, rewrites addresses.

Address rewriting: on the way in (cleanup_message.c) the addresses in sender
headers (From, Sender, Reply-To, ...) and recipient headers (To, Cc, Bcc,
...) go through qualification, ``sender_canonical_maps`` /
``recipient_canonical_maps``, ``canonical_maps`` and masquerading, each only
for the header classes its ``*_classes`` parameter names; which clients get
this is decided by :class:`relayd.rewrite.headers.HeaderRules`. On the way
out (smtp_proto.c) the same headers go through ``smtp_generic_maps``
(:func:`rewrite_generic_headers`).

Only the address itself is replaced: display names, comments, groups and the
client's line folding stay as they were, and a header with no changed address
is passed on byte for byte. MIME part headers and the body are never touched.
The stream is SMTP wire form (CRLF, dot-stuffed).
"""
from __future__ import annotations

import re
from typing import Callable

from relayd.cleanup.checker import ContentChecker
from relayd.cleanup.checks import ContentChecks
from relayd.rewrite.canonical import HEADER_RECIPIENT, HEADER_SENDER
from relayd.rewrite.generic import GenericMaps
from relayd.rewrite.headers import LOCAL_CONTEXT, HeaderRules
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

_SPECIALS = '()<>@,;:\\".[]'
# Both, as the parser reads header names (lower-case bytes).
_ADDRESS_HEADER_NAMES = frozenset(name.encode() for name in SENDER_HEADERS | RECIPIENT_HEADERS)

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


def _address_header(raw: bytes) -> bool:
    """Whether the header ``raw`` is a sender or recipient header (cheap: its name only)."""
    name = raw[:raw.find(b":")].rstrip(b" \t").decode("ascii", "replace").lower()
    return name in SENDER_HEADERS or name in RECIPIENT_HEADERS


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


def _one_qualified(line: bytes) -> bool:
    """One line, one address that has a domain, no comments, quotes or groups:
    "From: <a@example.com>", "To: Bob Smith <bob@example.com>", "Cc: c@example.com".
    Such a header needs no rewriting when only qualification could change it."""
    return _ONE_QUALIFIED.match(line) is not None


# An octet of either half of an addr-spec (no blank, CR or LF), of a display
# name, and of the local part of a bare address (no ":" or ";" before the "@").
_ADDR = rb'[^<>,@"()\\ \t\n\r\f\v]'
_PHRASE = rb'[^<>,@"()\\:;\r\n]'
_BARE_LOCAL = rb'[^<>,@"()\\:; \t\n\r\f\v]'
# Every repetition is possessive: the match never goes back, so it is linear in
# the line, whatever a client puts there.
_ONE_QUALIFIED = re.compile(
    rb"[^:\r\n]++:[ \t]*+(?:" + _PHRASE + rb"*+<" + _ADDR + rb"++@" + _ADDR + rb"++>|"
    + _BARE_LOCAL + rb"++@" + _ADDR + rb"++)[ \t]*+\r\n\Z")


# --- the primary header block ---------------------------------------------------------

class PrimaryHeaders:
    """What cleanup does with each header of one message's primary block besides
    the header checks: ``hop_count`` (Received: headers), ``message_id`` (of the
    first Message-ID: header, None when there is none) and, with a
    ``rewriter``, address rewriting."""

    __slots__ = ("hop_count", "message_id", "rewriter", "rewrites")

    # The only headers :meth:`seen` and :meth:`needs_rewrite` act on: a caller
    # may skip both for any other name.
    NOTICED = frozenset({b"received", b"message-id"}) | _ADDRESS_HEADER_NAMES

    def __init__(self, rewriter: "AddressRewriter | None" = None):
        self.hop_count = 0
        self.message_id: str | None = None
        self.rewriter = rewriter
        self.rewrites = rewriter is not None

    def seen(self, name: bytes, key: bytes) -> None:
        """A complete header: ``name`` in lower case, ``key`` its logical text
        (continuation lines joined with "\\n")."""
        if name == b"received":
            self.hop_count += 1
        elif name == b"message-id" and self.message_id is None:
            value = key[len(name) + 1:].split(b"\n", 1)[0]
            self.message_id = value.strip().decode("utf-8", "replace")

    def needs_rewrite(self, name: bytes, raw: bytes) -> bool:
        """Whether the whole header ``raw`` named ``name`` (lower case) may change
        in :meth:`rewrite`: an address header the rewriter cannot pass as it is."""
        return self.rewrites and name in _ADDRESS_HEADER_NAMES and \
            not self.rewriter.unchanged(raw)

    def rewrite(self, headers: bytes) -> bytes:
        """Whole headers in wire form, with their addresses rewritten."""
        return self.rewriter.rewrite(headers)


def _split_headers(block: bytes) -> list[bytes]:
    """Whole CRLF lines cut into headers: a line that starts with a blank continues one."""
    if block.count(b"\r\n") == 1:
        return [block]
    headers: list[bytes] = []
    pos = 0
    while pos < len(block):
        end = block.find(b"\r\n", pos) + 2
        if headers and block[pos:pos + 1] in (b" ", b"\t"):
            headers[-1] += block[pos:end]
        else:
            headers.append(block[pos:end])
        pos = end
    return headers


class AddressRewriter:
    """Rewrites the addresses of sender and recipient headers with
    ``rewrite(address, header class)``. A table that cannot answer stops the
    rewriting: ``error`` holds its TemporaryLookupError (the message must not
    be accepted now) and the headers after it pass unchanged."""

    __slots__ = ("address", "size_delta", "error")

    def __init__(self, address: AddressRewrite):
        self.address = address
        self.size_delta = 0       # octets the rewriting added (negative: removed)
        self.error: TemporaryLookupError | None = None

    def rewrite(self, headers: bytes) -> bytes:
        """Whole headers in wire form, with their addresses rewritten."""
        if self.error is not None:
            return headers
        out = []
        changed = False
        for raw in _split_headers(headers):
            if self.error is None and _address_header(raw) and not self.unchanged(raw):
                try:
                    new = rewrite_header(raw, self.address)
                except TemporaryLookupError as exc:
                    self.error = exc
                    new = raw
                if new is not raw:
                    self.size_delta += len(new) - len(raw)
                    raw, changed = new, True
            out.append(raw)
        return b"".join(out) if changed else headers

    def unchanged(self, raw: bytes) -> bool:
        """Whether the header ``raw`` is known to need nothing, without parsing it."""
        return False


class HeaderRewriter(AddressRewriter):
    """cleanup(8)'s header address rewriting for one message.

    ``active`` is False when Postfix would leave this client's headers alone;
    cleanup then does not use it at all.
    """

    __slots__ = ("active", "canonical", "origin", "qualify_only")

    def __init__(self, rules: HeaderRules, context: str | None):
        super().__init__(self._rewrite_address)
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

    def unchanged(self, raw: bytes) -> bool:
        return self.qualify_only and _one_qualified(raw)   # the common header

    def _rewrite_address(self, address: str, address_class: str) -> str:
        if not address:
            return address
        address = qualify(address, self.origin)
        if address_class == HEADER_SENDER:
            return self.canonical.sender(address, address_class)
        return self.canonical.recipient(address, address_class)


class HeaderStream:
    """A message streamed through cleanup's parser with only header address
    rewriting: ``feed`` each chunk, then ``finish``. ``rewriter`` is an
    :class:`AddressRewriter` or a plain ``(address, header class) -> address``
    function. A header over ``size_limit`` octets goes out unrewritten."""

    __slots__ = ("rewriter", "_checker")

    def __init__(self, rewriter: AddressRewriter | AddressRewrite, size_limit: int = 102400):
        if not isinstance(rewriter, AddressRewriter):
            rewriter = AddressRewriter(rewriter)
        self.rewriter = rewriter
        self._checker = ContentChecker(ContentChecks(header_size_limit=size_limit),
                                       primary=PrimaryHeaders(rewriter))

    @property
    def size_delta(self) -> int:
        """Octets the rewriting added (negative: removed)."""
        return self.rewriter.size_delta

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to pass on for ``chunk`` (a header waits for its last line)."""
        return self._checker.feed(chunk)

    def finish(self) -> bytes:
        """Whatever is still held back, at the end of the message.
        TemporaryLookupError: the message must not be accepted now."""
        rest, _ = self._checker.finish()
        if self.rewriter.error is not None:
            raise self.rewriter.error
        return rest


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

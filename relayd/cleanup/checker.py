"""cleanup(8)'s one parser of a message as it streams in, in SMTP wire form:
header blocks (primary, MIME part and nested message headers) and body lines,
with header_checks, mime_header_checks, nested_header_checks and body_checks
applied to them, and each header of the primary block handed to a
:class:`~relayd.cleanup.headers.PrimaryHeaders` (hop count, Message-ID,
header address rewriting) when one is given.

The session hands the checker the DATA content exactly as it will be stored:
CRLF line ends, still dot-stuffed. :meth:`ContentChecker.feed` returns the
bytes to store in place of the chunk; they are the input itself unless an
IGNORE, STRIP, REPLACE or PREPEND action edited a line, and then the edit is
written back in wire form too. A header is held back until its last
continuation line has been seen (one logical header, at most
header_size_limit bytes, is all that is ever held), and an incomplete line is
held until its CRLF arrives, so chunk boundaries may fall anywhere.

Lines are cut at line_length_limit (2048) bytes as Postfix's smtpd cuts them
into records: body_checks see a longer line in pieces, and a folded header is
one key whatever its length, the folding newlines kept as "\\n" (mime_state.c
joins continuation lines with "\\n" before cleanup looks the header up).

An edit of one piece must never change what the stored form means to the next
hop: the checker tracks whether its *output* is at a line start, apart from
its input, and a piece written at an output line start is dot-stuffed there
(an IGNORE of a line's first piece makes the rest of the line a line of its
own, as in Postfix's queue file). A dropped piece that ended its line still
ends the output line; a PREPEND before a later piece first ends the output
line, so the prepended text is always a line of its own. Unedited input goes
out byte for byte.

Once nothing more can be decided (the primary header block is behind us, and
a REJECT, DISCARD, REDIRECT or PASS ended inspection, or no MIME header or
body checks are configured, or the last MIME boundary is behind us and
body_checks are off or past body_checks_size_limit) ``feed`` returns its
chunk untouched; in body
parts that body_checks do not inspect only lines that start with "--" are
looked at, found with one ``bytes.find`` per chunk.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from relayd.cleanup import actions
from relayd.cleanup.actions import DROP, KEEP, LogContext, Outcome, Prepend, Replace
from relayd.cleanup.checks import CheckMaps, ContentChecks
from relayd.cleanup.mime import BODY, NESTED, PRIMARY, MimeState
from relayd.maillog import CLEANUP as log
from relayd.smtp.replies import R451_QUEUE_WRITE_ERROR, Reply
from relayd.smtp.text import has_long_line, header_name
from relayd.tables.base import TemporaryLookupError


# One whole header as header_name() and the continuation rule read it, in wire
# form; its first line must not start with "." (a stuffed line takes the slow path).
# Known complete: the match ends with the first octet of the next line, which
# does not continue it. Every repetition is possessive (linear on client data).
_WHOLE_HEADER = re.compile(
    rb"([!-\-/-9;-~][!-9;-~]*+)[ \t]*+:[^\r\n]*+\r\n(?:[ \t][^\r\n]*+\r\n)*+[^ \t]")


@dataclass(frozen=True, slots=True)
class ContentResult:
    """What the content checks decided about one message.

    ``reply``: a REJECT (550, or 451 for a 4.x.x REJECT or a table that could
    not answer): refuse the message with it. Otherwise, in this order of
    precedence: ``discard`` (text, "" when none: claim delivery, drop the
    message), ``hold`` (text: put it on hold), ``redirect`` (the one
    recipient it goes to instead), ``filter`` (transport:destination that
    overrides content_filter), ``bcc`` (recipients to add, NOTIFY=NONE).
    ``warnings`` lists the WARN texts. ``size_delta`` is how many octets
    (after dot-unstuffing) the edits added to the message, negative when they
    removed some.
    """

    reply: Reply | None = None
    discard: str | None = None
    hold: str | None = None
    redirect: str | None = None
    filter: str | None = None
    bcc: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    size_delta: int = 0


class ContentChecker:
    """The content checks of one message. ``feed`` each DATA chunk, then ``finish``.

    ``primary``: what else is done with each header of the primary block (see
    :class:`~relayd.cleanup.headers.PrimaryHeaders`). With no checks
    configured and no ``primary`` ``feed`` returns its argument at once.
    """

    __slots__ = ("checks", "context", "outcome", "primary", "_mime", "_tail", "_line_start",
                 "_out", "_out_start", "_hdr_raw", "_hdr_name", "_hdr_key", "_hdr_size", "_hdr_flushed",
                 "_delta", "_passthrough", "_parts_checked", "_unchecked_headers", "verbatim")

    def __init__(self, checks: ContentChecks, context: LogContext | None = None,
                 primary=None):
        self.checks = checks
        self.context = context or LogContext()
        self.outcome = Outcome()
        self.primary = primary
        self._mime = MimeState(nesting_limit=checks.nesting_limit,
                               boundary_limit=checks.boundary_limit,
                               disabled=checks.mime_disabled)
        self._tail = b""            # an incomplete record, waiting for more bytes
        self._line_start = True     # the next byte begins a line, not a continuation piece
        self._out: list[bytes] = []
        self._out_start = True      # the next byte written begins a stored line
        self._hdr_raw: list[bytes] | None = None   # the pending header, as received
        self._hdr_name = b""                       # ... its name
        self._hdr_key = bytearray()                # ... and as the tables see it
        self._hdr_size = 0                         # ... its octets after unstuffing
        self._hdr_flushed = False                  # ... already written (too long to hold)
        self._delta = 0
        self._passthrough = not checks.active and primary is None
        # Whether anything looks past the primary header block.
        self._parts_checked = any((checks.mime, checks.nested, checks.body))
        # Whether no table looks at the primary headers (only ``primary`` does).
        self._unchecked_headers = primary is not None and checks.header is None \
            and checks.mime is None
        # How many octets at the end of what feed() returned are the chunk's own, unchanged.
        self.verbatim = 0

    def feed(self, chunk: bytes) -> bytes:
        """The wire-form bytes to store for *chunk* (possibly edited, possibly
        less or more than the chunk: an incomplete line or header waits).
        Its last :attr:`verbatim` octets are the end of *chunk* as it came."""
        if self._passthrough:
            self.verbatim = len(chunk)
            return chunk
        data = self._tail + chunk if self._tail else chunk
        self._out = []
        self.verbatim = 0
        self._tail = data[self._scan(data, final=False):]
        self.verbatim = min(self.verbatim, len(chunk))
        return b"".join(self._out)

    def finish(self) -> tuple[bytes, ContentResult]:
        """The bytes still held back, and the verdict on the whole message."""
        self._out = []
        if self._tail:
            self._scan(self._tail, final=True)
            self._tail = b""
        if self._hdr_raw is not None:
            self._complete_header()
        o = self.outcome
        result = ContentResult(reply=o.reply, discard=o.discard, hold=o.hold,
                               redirect=o.redirect, filter=o.filter, bcc=tuple(o.bcc),
                               warnings=tuple(o.warnings), size_delta=self._delta)
        return b"".join(self._out), result

    # --- cutting the stream into records ------------------------------------

    def _scan(self, data: bytes, final: bool) -> int:
        """Process the whole records in *data*; return how far it got."""
        pos, n = 0, len(data)
        piece = self.checks.line_length_limit
        while pos < n:
            if self._unchecked_headers and self._mime.state == PRIMARY \
                    and self._hdr_raw is None and self._line_start and self._out_start:
                run = self._header_run(data, pos)
                if run != pos:
                    pos = run
                    continue
            if self._in_step() and self._nothing_left_to_check():
                self._passthrough = not final
                self._out.append(data[pos:])
                self.verbatim = n - pos
                return n
            if not final and self._in_step() and self._skippable():
                skipped = self._skip(data, pos)
                if skipped is None:
                    break
                if skipped != pos:
                    pos = skipped
                    continue
            nl = data.find(b"\r\n", pos, pos + piece + 2)
            if nl >= 0:
                self._record(data[pos:nl], data[pos:nl + 2], terminated=True)
                pos = nl + 2
            elif n - pos >= piece + 2:
                # A long line goes on in pieces, as smtpd's line_length_limit records.
                self._record(data[pos:pos + piece], data[pos:pos + piece], terminated=False)
                pos += piece
            elif final:
                self._record(data[pos:], data[pos:], terminated=False)
                pos = n
            else:
                break
        return pos

    def _in_step(self) -> bool:
        """Whether input may go out as it is: no header held, and the output
        at a line start exactly when the input is (no piece edit pending)."""
        return self._hdr_raw is None and self._out_start == self._line_start

    def _nothing_left_to_check(self) -> bool:
        mime = self._mime
        if mime.state == PRIMARY:   # every primary header goes to ``primary``, checked or not
            return self.primary is None and not self.outcome.active
        return not self.outcome.active or not self._parts_checked or (
            mime.final and not self._body_inspected())

    def _body_inspected(self) -> bool:
        """Whether body_checks look at the current body line."""
        limit = self.checks.body_size_limit
        return self.checks.body is not None and (not limit or self._mime.body_offset < limit)

    def _skippable(self) -> bool:
        return self._mime.state == BODY and not self._body_inspected()

    def _skip(self, data: bytes, pos: int) -> int | None:
        """Write out body text up to the next line that starts with "--" (a
        boundary candidate). Returns the new position (*pos* itself when the
        line at *pos* must be looked at), or None when more data is needed."""
        if self._line_start:
            head = data[pos:pos + 2]
            if head == b"--":
                return pos
            if head == b"-":
                return None
        found = data.find(b"\r\n--", pos)
        if found >= 0:
            cut = found + 2
        else:
            # Keep back what could be the start of "\r\n--", and never part a CR from its LF.
            cut = len(data) - 3
            if cut > pos and data[cut - 1] == 13:
                cut -= 1
            if cut <= pos:
                return None
        self._out.append(data[pos:cut])
        self._line_start = self._out_start = data[max(pos, cut - 2):cut] == b"\r\n"
        return cut

    def _record(self, line: bytes, raw: bytes, terminated: bool) -> None:
        """One record: a whole line (*terminated*) or a piece of a long one."""
        at_start = self._line_start
        self._line_start = terminated
        stuffed = at_start and line[:1] == b"."
        text = line[1:] if stuffed else line
        mime = self._mime
        if mime.state != BODY:
            if self._hdr_raw is not None:
                if not at_start or text[:1] in (b" ", b"\t"):
                    self._grow_header(text, raw, at_start, len(raw) - stuffed)
                    return
                self._complete_header()
            name = header_name(text) if at_start else None
            if name is not None:
                self._start_header(name, text, raw, len(raw) - stuffed)
                return
            mime.end_of_headers(empty=not text)
        self._body(text, raw, at_start, len(raw) - stuffed)

    # --- headers ----------------------------------------------------------

    def _start_header(self, name: bytes, text: bytes, raw: bytes, size: int) -> None:
        # "Subject :" is looked up as "Subject:", as Postfix normalises it.
        self._hdr_name = name
        self._hdr_key = bytearray(name + text[text.index(b":"):])
        self._hdr_raw = [raw]
        self._hdr_size = size
        self._hdr_flushed = False

    def _grow_header(self, text: bytes, raw: bytes, new_line: bool, size: int) -> None:
        if len(self._hdr_key) < self.checks.header_size_limit:
            if new_line:
                self._hdr_key += b"\n"
            self._hdr_key += text
        self._hdr_raw.append(raw)
        self._hdr_size += size
        if self._hdr_size > self.checks.header_size_limit + self.checks.line_length_limit:
            # Memory stays bounded: a giant header is written out as it comes.
            self._out.extend(self._hdr_raw)
            self._out_start = self._line_start
            self._hdr_raw.clear()
            self._hdr_flushed = True

    def _complete_header(self) -> None:
        raw, key, size, flushed = self._hdr_raw, bytes(self._hdr_key), self._hdr_size, \
            self._hdr_flushed
        self._hdr_raw = None
        name = self._hdr_name
        lower = name.lower()
        mime = self._mime
        if lower == b"content-type":
            mime.content_type(key[len(name) + 1:])
        header_class = mime.header_class(lower)
        maps = self.checks.header if header_class == PRIMARY else \
            self.checks.nested if header_class == NESTED else self.checks.mime
        edit = KEEP
        if maps is not None and self.outcome.active:
            edit = self._check(maps, actions.HEADER, key)
        if flushed and edit is not KEEP:
            log.warning("%s: %s: header longer than header_size_limit, left unedited: %.60r",
                        self.context.queue_id, maps.title, key)
            edit = KEEP
        primary = self.primary if mime.state == PRIMARY else None
        if primary is None:
            self._emit_header(edit, raw, size)
            return
        primary.seen(lower, key)
        start = len(self._out)
        self._emit_header(edit, raw, size)
        # A header too long to hold (or past header_size_limit) goes out unrewritten.
        if primary.rewrites and not flushed and size <= self.checks.header_size_limit \
                and len(self._out) > start:
            # Whole headers, at a line start: what the checks kept, prepended or put instead.
            self._out[start:] = [primary.rewrite(b"".join(self._out[start:]))]

    def _header_run(self, data: bytes, pos: int) -> int:
        """The fast path of the primary block when no table looks at it: whole
        headers from *pos* (each known complete: the next line has begun and is
        not a continuation) go to ``primary`` and out as one run. Returns where
        it stopped; anything unusual (a stuffed line, a line or header over
        the limits, the end of the headers) is left to the record path."""
        primary, mime = self.primary, self._mime
        line_limit, size_limit = self.checks.line_length_limit, self.checks.header_size_limit
        noticed = primary.NOTICED
        start = pos
        changes = False   # whether header rewriting may change a header of the run
        while (m := _WHOLE_HEADER.match(data, pos)) is not None:
            end = m.end() - 1
            if end - pos > size_limit \
                    or end - pos > line_limit + 2 and has_long_line(data[pos:end], line_limit):
                break
            name = m.group(1)
            lower = name.lower()
            if lower in noticed or lower == b"content-type":
                # The logical header as the tables would see it (see _start_header).
                key = name + data[data.index(b":", m.end(1)):end - 2].replace(b"\r\n", b"\n")
                if lower == b"content-type":
                    mime.content_type(key[len(name) + 1:])
                primary.seen(lower, key)
                changes = changes or primary.needs_rewrite(lower, data[pos:end])
            pos = end
        if pos != start:
            block = data[start:pos]
            self._out.append(primary.rewrite(block) if changes else block)
        return pos

    # --- body -------------------------------------------------------------

    def _body(self, text: bytes, raw: bytes, at_start: bool, size: int) -> None:
        mime = self._mime
        if at_start:
            mime.body_line(text)
        edit = KEEP
        if self._body_inspected() and self.outcome.active:
            edit = self._check(self.checks.body, actions.BODY, text)
        mime.body_offset += len(text) + 1
        terminated = raw.endswith(b"\r\n")
        if edit is KEEP:
            self._keep(text, raw, at_start, terminated)
        elif edit is DROP:
            self._delta -= size
            if terminated:
                self._end_line()     # the rest of the line is gone, not its line end
        elif isinstance(edit, Replace):
            self._delta += self._put_lines(edit.text, terminated) - size
        elif isinstance(edit, Prepend):
            self._end_line()         # a prepended line is never glued to earlier pieces
            self._delta += self._put_lines(edit.text, True)
            self._keep(text, raw, at_start, terminated)

    # --- lookups and edits -------------------------------------------------

    def _check(self, maps: CheckMaps, where: str, key: bytes):
        text = key.decode("utf-8", "surrogateescape")
        try:
            value = maps.find(text)
        except TemporaryLookupError as exc:
            log.warning("%s: %s map lookup problem -- message not accepted, try again later"
                        " (%s)", self.context.queue_id, maps.title, exc)
            self.outcome.reply = R451_QUEUE_WRITE_ERROR
            self.outcome.active = False
            return KEEP
        if value is None:
            return KEEP
        return actions.act(self.outcome, self.context, where, text, value, maps.title)

    def _emit_header(self, edit, raw: list[bytes], size: int) -> None:
        """Write a whole header (it starts at a line start, in and out) or its edit."""
        if edit is KEEP or isinstance(edit, Prepend):
            if edit is not KEEP:
                self._delta += self._put_lines(edit.text, True)
            if raw:    # empty when a giant header went out as it came
                self._out.extend(raw)
                self._out_start = raw[-1].endswith(b"\r\n")
        elif edit is DROP:
            self._delta -= size
        elif isinstance(edit, Replace):
            self._delta += self._put_lines(edit.text, True) - size

    # --- writing wire form ---------------------------------------------------

    def _keep(self, text: bytes, raw: bytes, at_start: bool, terminated: bool) -> None:
        """Write a record unedited: as received when the output is where the input
        was, else its text stuffed for where the output is (delta unchanged)."""
        if at_start == self._out_start:
            self._out.append(raw)
            self._out_start = terminated
        else:
            self._put(text, terminated)

    def _put(self, text: bytes, terminated: bool) -> int:
        """Write unstuffed *text* (no CR or LF in it) where the output is, stuffed
        when that is a line start; returns its size after unstuffing."""
        if self._out_start and text[:1] == b".":
            self._out.append(b".")
        self._out.append(text + b"\r\n" if terminated else text)
        self._out_start = terminated or (self._out_start and not text)
        return len(text) + 2 * terminated

    def _put_lines(self, text: str, terminated: bool) -> int:
        """Write action *text* (a "\\n" from a $N of a folded header is a line
        end); returns its size after unstuffing."""
        lines = text.encode("utf-8", "surrogateescape").split(b"\n")
        size = 0
        for index, line in enumerate(lines):
            last = index == len(lines) - 1
            size += self._put(line.rstrip(b"\r").translate(_NEUTRAL), terminated or not last)
        return size

    def _end_line(self) -> None:
        """End the output line when a piece of it is out (a line end's two octets)."""
        if not self._out_start:
            self._out.append(b"\r\n")
            self._out_start = True
            self._delta += 2


# A stray CR or NUL in an action's text becomes a space, as the DATA reader does.
_NEUTRAL = bytes.maketrans(b"\r\0", b"  ")

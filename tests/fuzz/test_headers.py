"""Fuzz cleanup's one message parser: the hop count and Message-ID of the
primary header block, the MIME state machine and the content checks built on
it (relayd/cleanup), and header address rewriting (relayd/cleanup/headers.py),
on random messages cut at random points.

Oracles: no exception; results do not depend on the cuts; memory stays
bounded on huge headers; the stored output is one DATA transmission
(oracles.assert_wire_form) and, where the input's header block was well
formed, so is the output's (oracles.assert_header_block).
"""
from __future__ import annotations

import dataclasses
import functools
import re
import tempfile
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayd.cleanup import ContentChecker, ContentChecks
from relayd.cleanup.headers import AddressRewriter, HeaderRewriter, HeaderStream, PrimaryHeaders
from relayd.cleanup.mime import MimeState
from relayd.config import load_config
from relayd.smtp.text import header_name
from tests.fuzz.harness import fuzz_settings, long_runs, split
from tests.fuzz.oracles import (assert_header_block, assert_wire_form, dot_stuff,
                                 wire_form_violation)

# Logical header and body lines (no CR/LF/NUL: the DATA reader saw to that);
# the message is dot_stuff(lines joined by CRLF), the wire form the parsers see.
HEADER_LINES = st.one_of(
    st.sampled_from([b"Received: from a by b", b"received:x", b"Message-ID: <1@x>",
                     b"Subject: s", b"X-Drop: d", b"X-Strip: s", b"To: t@x, <u@y>", b"X-Dot: d",
                     b" cont", b"\tcont", b".", b"..", b".x", b"From: \"a, b\" <a@b> (c)",
                     b"Cc: g: a@b, c@d;", b"Content-Type: multipart/mixed; boundary=b",
                     b"Content-Type: message/rfc822", b"Content-Type: multipart/mixed; "
                     b"boundary=\"b\\\"q\"; boundary=c", b"Subject :x", b"\xff: 8bit"]),
    st.binary(max_size=10).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")),
    long_runs(b"A. ,<@", 3000).map(lambda run: b"Subject: " + run))
BODY_LINES = st.one_of(
    st.sampled_from([b"", b".", b"..", b".x", b"--b", b"--b--", b"--c", b"BBB", b"CCC", b"DDD",
                     b"EEE", b"FFF", b"GGG", b"Content-Type: text/plain", b"X-Drop: d"]),
    long_runs(b"A.B", 300),
    # A line that breaks into pieces right before a ".": 16 and 40 are line_length_limits below.
    st.builds(lambda n, tail: b"A" * n + tail, st.sampled_from([15, 16, 17, 32, 40, 80]),
              st.sampled_from([b".", b"..", b".x", b"B", b"C."])))
MESSAGE = st.builds(lambda head, body: dot_stuff(b"\r\n".join(head + [b""] + body) + b"\r\n"),
                    st.lists(HEADER_LINES, max_size=12), st.lists(BODY_LINES, max_size=20))


HEADER_SIZE_LIMIT = ContentChecks().header_size_limit


# --- the primary header block: hop count and Message-ID --------------------------------

def scan(pieces: list[bytes]) -> tuple[int, str | None]:
    primary = PrimaryHeaders()
    checker = ContentChecker(ContentChecks(), primary=primary)
    for piece in pieces:
        checker.feed(piece)
    checker.finish()
    return primary.hop_count, primary.message_id


@fuzz_settings(300)
@given(message=MESSAGE, data=st.data())
def test_header_scan_does_not_depend_on_the_cuts(message, data):
    assert scan(data.draw(split(message, 10))) == scan([message])


def test_header_scan_past_the_size_limit_does_not_depend_on_the_cuts():
    pad = b"X-Pad: " + b"p" * (HEADER_SIZE_LIMIT - 9) + b"\r\n"    # exactly the limit
    message = pad + b"Received: from a\r\nReceived: from b\r\n\r\nbody\r\n"
    cut = len(pad)
    assert scan([message[:cut], message[cut:]]) == scan([message])


# --- the MIME state machine and the content checker ----------------------------------

@fuzz_settings(300)
@given(lines=st.lists(st.one_of(HEADER_LINES, BODY_LINES), max_size=40))
def test_mime_state_stays_bounded(lines):
    mime = MimeState(nesting_limit=3, boundary_limit=8)
    for line in lines:
        name = header_name(line)
        if mime.state != 3 and name is not None:
            if name.lower() == b"content-type":
                mime.content_type(line[line.index(b":") + 1:])
            mime.header_class(name.lower())
        elif mime.state != 3:
            mime.end_of_headers(empty=not line)
        else:
            mime.body_line(line)
        assert len(mime.stack) <= 3 and all(len(b) <= 8 for b, *_ in mime.stack)


HEADER_RULES = ("/^Subject:/ REPLACE Subject: .replaced\n/^X-Drop:/ IGNORE\n/^X-Strip:/ STRIP\n"
                "/^To:/ PREPEND X-Checked: yes\n/^X-Dot:/ PREPEND X-Was-Dot: .\n"
                "/^Content-Type:/ WARN ct\n")
BODY_RULES = ("/^A{4}/ IGNORE\n/^B/ STRIP\n/^C/ PREPEND .prepended\n/^D/ REPLACE .\n"
              "/^E/ REPLACE ..e\n/^F/ PREPEND X-Body: f\n/^G/ WARN g\n")
# Rule sets; one that edits "." lines too would hide what the others expose.
RULE_SETS = [(HEADER_RULES, BODY_RULES), (HEADER_RULES, BODY_RULES + "/^\\./ REPLACE .dot\n"),
             (HEADER_RULES, "/^A/ STRIP\n"), (HEADER_RULES, "/^A/ PREPEND X: p\n")]
WARN_RULES = "/^Subject:/ WARN s\n/^A/ WARN a\n/^\\./ WARN dot\n/^--b/ WARN b\n"


@functools.cache
def checks(header_rules: str, body_rules: str) -> ContentChecks:
    directory = tempfile.mkdtemp(prefix="relayd-fuzz-")   # a few bytes, per process
    for name, text in (("hc", header_rules), ("bc", body_rules)):
        with open(f"{directory}/{name}", "w") as f:
            f.write(text)
    config = load_config(main_cf=f"header_checks = regexp:{directory}/hc\n"
                                 f"body_checks = regexp:{directory}/bc\n")
    return ContentChecks.from_config(config)


def check(message: bytes, pieces: list[bytes], rules: tuple[str, str], line_length_limit: int):
    checker = ContentChecker(dataclasses.replace(checks(*rules), line_length_limit=line_length_limit))
    out = [checker.feed(piece) for piece in pieces]
    rest, result = checker.finish()
    return b"".join(out) + rest, result


@fuzz_settings(300)
@given(message=MESSAGE, limit=st.sampled_from([16, 40, 2048]), data=st.data())
def test_content_checker_without_edits_stores_the_content_unchanged(message, limit, data):
    out, result = check(message, data.draw(split(message, 10)), (WARN_RULES, WARN_RULES), limit)
    assert out == message
    assert result.reply is None


@fuzz_settings(400)
@given(message=MESSAGE, rules=st.sampled_from(RULE_SETS), limit=st.sampled_from([16, 40, 2048]),
       data=st.data())
def test_content_checker_edits_keep_the_wire_form(message, rules, limit, data):
    out, result = check(message, data.draw(split(message, 10)), rules, limit)
    if result.reply is None:
        assert_wire_form(out)


@pytest.mark.parametrize("message, limit", [
    (b"\r\n" + b"A" * 40 + b".\r\n", 40),                       # the harness's minimal input
    (b"\r\nline1\r\n" + b"A" * 2048 + b".\r\nMAIL FROM:<ceo@victim>\r\n", 2048)])  # issue 7's
def test_content_checker_fixed_smuggling_cases(message, limit):
    out, result = check(message, [message], RULE_SETS[0], limit)
    assert result.reply is not None or wire_form_violation(out) is None, out


# --- header address rewriting --------------------------------------------------------

ADDRESS_HEADERS = st.builds(
    lambda name, value: name + b": " + value,
    st.sampled_from([b"From", b"To", b"Cc", b"Reply-To", b"Sender", b"Bcc", b"Subject"]),
    st.lists(st.sampled_from([b"a@b", b"<c@d>", b"x", b"\"q u\"@e", b"(c)", b",", b";", b":",
                              b"<", b">", b"\"", b"\\", b"@", b" ", b"[1.2.3.4]", b"\xc3\xa9",
                              b"\r\n\tfold"]), max_size=12).map(b"".join))
REWRITES = [lambda address, _: address,
            lambda address, _: address.upper(),
            lambda address, _: address.rpartition("@")[0] + "@new.example",
            lambda address, _: '".weird\\"local"@x',
            lambda address, _: "a b(c)<d>@e"]


def rewrite_headers(stream: HeaderStream, message: bytes, data) -> bytes:
    pieces = data.draw(split(message, 10), label="reads")
    return b"".join(stream.feed(piece) for piece in pieces) + stream.finish()


HEADS = st.lists(st.one_of(ADDRESS_HEADERS, HEADER_LINES), max_size=10)


@fuzz_settings(400)
@given(head=HEADS, body=st.lists(BODY_LINES, max_size=5),
       rewrite=st.sampled_from(range(len(REWRITES))), limit=st.sampled_from([64, 102400]),
       data=st.data())
def test_header_rewriting_keeps_the_wire_form(head, body, rewrite, limit, data):
    message = dot_stuff(b"\r\n".join(head + [b""] + body) + b"\r\n")
    out = rewrite_headers(HeaderStream(REWRITES[rewrite], limit), message, data)
    assert_wire_form(out)
    if rewrite == 0:
        assert out == message


@fuzz_settings(400)
@given(head=HEADS, body=st.one_of(st.none(), st.lists(BODY_LINES, max_size=5)),
       rewrite=st.sampled_from(range(len(REWRITES))), limit=st.sampled_from([64, 102400]),
       data=st.data())
def test_header_rewriting_keeps_the_header_block_well_formed(head, body, rewrite, limit, data):
    """Also messages that are headers only (``body`` None: no empty line)."""
    lines = head if body is None else head + [b""] + body
    message = dot_stuff(b"\r\n".join(lines) + b"\r\n") if lines else b""
    out = rewrite_headers(HeaderStream(REWRITES[rewrite], limit), message, data)
    assert_wire_form(out)
    block = _header_block(message)
    if block is not None:
        out_block = _header_block(out)
        assert out_block is not None, out
        assert out[len(out_block):] == message[len(block):]   # the body is never touched


def primary_pass(message: bytes, pieces: list[bytes], rewrite: int, header_rules: str,
                 line_length_limit: int, header_size_limit: int):
    """Everything cleanup decides about the primary block, with *header_rules*
    as header_checks (none: the checker's fast path for unchecked headers)."""
    rewriter = AddressRewriter(REWRITES[rewrite])
    primary = PrimaryHeaders(rewriter)
    limits = dict(line_length_limit=line_length_limit, header_size_limit=header_size_limit)
    base = checks(header_rules, "") if header_rules else ContentChecks()
    checker = ContentChecker(dataclasses.replace(base, **limits), primary=primary)
    out = b"".join(checker.feed(piece) for piece in pieces) + checker.finish()[0]
    return out, primary.hop_count, primary.message_id, rewriter.size_delta


@fuzz_settings(400)
@given(head=HEADS, body=st.lists(BODY_LINES, max_size=3), rewrite=st.sampled_from(range(len(REWRITES))),
       line_limit=st.sampled_from([16, 40, 2048]), size_limit=st.sampled_from([24, 64, 102400]),
       data=st.data())
def test_unchecked_headers_fast_path_agrees_with_the_record_path(head, body, rewrite, line_limit,
                                                                 size_limit, data):
    """With no header_checks the primary block takes a fast path; a header_checks
    table that never matches sends it through the record path: stored bytes,
    hop count, Message-ID and rewriting must not tell them apart."""
    message = dot_stuff(b"\r\n".join(head + [b""] + body) + b"\r\n")
    pieces = data.draw(split(message, 10), label="reads")
    fast = primary_pass(message, pieces, rewrite, "", line_limit, size_limit)
    records = primary_pass(message, pieces, rewrite, "/^X-Never-Sent:/ WARN never\n", line_limit,
                           size_limit)
    assert fast == records


@pytest.mark.parametrize("line_limit", [16, 2048])
def test_a_header_over_header_size_limit_is_left_unrewritten_on_both_paths(line_limit):
    """A fixed case: a header longer than header_size_limit but within the line
    limit (the fast path once let this one through to rewriting)."""
    message = b"To: " + b"x" * 80 + b"@old.example\r\nSubject: s\r\n\r\nbody\r\n"
    fast = primary_pass(message, [message], 1, "", line_limit, 64)
    records = primary_pass(message, [message], 1, "/^X-Never-Sent:/ WARN never\n", line_limit, 64)
    assert fast == records == (message, 0, None, 0)


@pytest.mark.parametrize("message", [b'To: "x\r\n', b'To: "x\r\n\r\nbody\r\n'])
def test_unclosed_quote_keeps_the_header_block(message):
    """The minimal input the harnesses above found, kept as a fixed case."""
    stream = HeaderStream(REWRITES[2])
    out = stream.feed(message) + stream.finish()
    assert_wire_form(out)
    assert out.count(b"\r\n") == message.count(b"\r\n"), out


def _header_block(message: bytes) -> bytes | None:
    """The header block when ``message`` has a well-formed one, else None."""
    end = message.find(b"\r\n\r\n")
    if end < 0 or message.startswith(b"\r\n"):
        return None
    block = message[:end + 2]
    return block if _well_formed(block) else None


def _well_formed(block: bytes) -> bool:
    try:
        assert_header_block(block)
    except AssertionError:
        return False
    return True


@fuzz_settings(200)
@given(head=st.lists(ADDRESS_HEADERS, max_size=8), data=st.data())
def test_header_rewriter_qualifying_keeps_the_wire_form(head, data):
    message = b"\r\n".join(head + [b"", b"body"]) + b"\r\n"
    assert_wire_form(rewrite_headers(HeaderStream(HeaderRewriter.from_config(_rewrite_config())), message, data))


@fuzz_settings(200)
@given(head=st.lists(ADDRESS_HEADERS, max_size=8), data=st.data())
def test_header_rewriter_qualifying_keeps_the_header_block_well_formed(head, data):
    message = b"\r\n".join(head + [b"", b"body"]) + b"\r\n"
    out = rewrite_headers(HeaderStream(HeaderRewriter.from_config(_rewrite_config())), message, data)
    headers_only = b"".join(line + b"\r\n" for line in head)
    assert_wire_form(rewrite_headers(HeaderStream(HeaderRewriter.from_config(_rewrite_config())),
                                     headers_only, data))
    if _header_block(message) is not None:
        assert _header_block(out) is not None, out
        assert out.endswith(b"\r\n\r\nbody\r\n"), out


@functools.cache
def _rewrite_config():
    return load_config(main_cf="myorigin = example.com\n")


# --- memory on huge headers ----------------------------------------------------------

HUGE = 4 << 20   # 4 MiB of one header, fed in 64 KiB reads


def _huge_header():
    yield b"Subject: "
    piece = b"x" * (64 << 10)
    for _ in range(HUGE // len(piece)):
        yield piece
        yield b"\r\n\t"


@pytest.mark.parametrize("parser", ["PrimaryHeaders", "ContentChecker", "HeaderRewriter"])
def test_huge_header_memory_is_bounded(parser):
    if parser == "PrimaryHeaders":
        feed = ContentChecker(ContentChecks(), primary=PrimaryHeaders()).feed
    elif parser == "ContentChecker":
        feed = ContentChecker(checks(HEADER_RULES, BODY_RULES)).feed
    else:
        feed = HeaderStream(HeaderRewriter.from_config(_rewrite_config())).feed
    tracemalloc.start()
    try:
        for piece in _huge_header():
            feed(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # header_size_limit (100 KiB) plus a few reads' worth, never the whole 4 MiB.
    assert peak < HEADER_SIZE_LIMIT + (1 << 20), peak


def test_header_block_oracle_knows_a_bad_block():
    """The oracle itself: a body line inside the block is caught."""
    with pytest.raises(AssertionError):
        assert_header_block(b"Subject: x\r\nnot a header\r\n")
    assert re.match(rb"X-Checked", check(b"To: a\r\n\r\n", [b"To: a\r\n\r\n"],
                                         (HEADER_RULES, BODY_RULES), 2048)[0])

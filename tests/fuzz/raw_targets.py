"""Byte-level fuzz targets for long runs (``tools/fuzz --engine raw``).

Each target takes the raw bytes libFuzzer mutates and splits them with
atheris.FuzzedDataProvider (C++, cheap) into choices: tokens of the same
alphabets as the hypothesis harnesses, read cuts, driver replies, options.
They check the same invariants as the hypothesis harnesses, with the same
code: the oracles of tests/fuzz/oracles.py and tests/queue/dsn_oracle.py, and
the harnesses' own drivers and models (Transcript, Delivery, the DATA reader
model, the content checker's rule sets), imported, not copied. Only the input
generation is written again, as a few hundred times cheaper byte decoding.

A target fails by raising (an AssertionError from an oracle, or whatever the
code under test raised). Data exhausted early reads as zeros: the first
choice of every list, which is the accepting one, so short inputs still get
somewhere.

``TARGETS`` maps a target name to its function; ``KNOWN_DEFECT`` maps a
target that can find a defect still open to the suite test that shows the
defect: while that test is marked xfail, tools/fuzz skips the target (unless
--include-xfail) and the suite expects it may fail.
"""
from __future__ import annotations

import importlib

import atheris

from relayd.cleanup.headers import HeaderRewriter, HeaderStream
from relayd.delivery.smtp import reply_outcome
from relayd.queue.bounce import DELAYED, FAILED
from relayd.queue.outcome import BOUNCED, Outcome, from_text
from relayd.smtp.events import ConnectionClosed
from relayd.smtp.server import ServerSession, State
from relayd.smtp.wireform import stored_form_problem
from tests.fuzz import test_client_core as client_harness
from tests.fuzz import test_data_reader as data_harness
from tests.fuzz import test_dsn as dsn_harness
from tests.fuzz import test_headers as header_harness
from tests.fuzz import test_server_core as server_harness
from tests.fuzz.harness import LINE_TOKENS
from tests.fuzz.oracles import assert_wire_form, dot_stuff, text_violation
from tests.queue.dsn_oracle import check_dsn

Provider = atheris.FuzzedDataProvider


# --- turning bytes into inputs -----------------------------------------------------------

def tokens(fdp: Provider, table: list[bytes], max_tokens: int, runs: bytes = b"a.\r\n ",
           max_run: int = 300, max_raw: int = 12) -> bytes:
    """Up to ``max_tokens`` pieces: mostly from ``table``, some raw bytes, some long
    runs of one byte of ``runs`` (long lines, runs of dots or of line ends)."""
    parts = []
    for _ in range(fdp.ConsumeIntInRange(0, max_tokens)):
        kind = fdp.ConsumeIntInRange(0, 9)
        if kind < 7:
            parts.append(table[fdp.ConsumeIntInRange(0, len(table) - 1)])
        elif kind < 9:
            parts.append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, max_raw)))
        else:
            parts.append(runs[fdp.ConsumeIntInRange(0, len(runs) - 1):][:1]
                         * fdp.ConsumeIntInRange(1, max_run))
    return b"".join(parts)


def lines(fdp: Provider, table: list[bytes], max_lines: int, runs: bytes, max_run: int) -> list[bytes]:
    """Logical lines (no CR, LF or NUL): from ``table``, raw, or a long run."""
    out = []
    for _ in range(fdp.ConsumeIntInRange(0, max_lines)):
        kind = fdp.ConsumeIntInRange(0, 9)
        if kind < 8:
            out.append(table[fdp.ConsumeIntInRange(0, len(table) - 1)])
        elif kind == 8:
            out.append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 10)).translate(None, b"\r\n\0"))
        else:
            out.append(b"Subject: " + runs[fdp.ConsumeIntInRange(0, len(runs) - 1):][:1]
                       * fdp.ConsumeIntInRange(1, max_run))
    return out


def cut(fdp: Provider, data: bytes, max_cuts: int) -> list[bytes]:
    """``data`` cut at data-chosen offsets (one TCP read each)."""
    if len(data) < 2:
        return [data] if data else []
    bounds = sorted({fdp.ConsumeIntInRange(1, len(data) - 1)
                     for _ in range(fdp.ConsumeIntInRange(0, max_cuts))})
    bounds = [0, *bounds, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def pick(fdp: Provider, choices):
    return choices[fdp.ConsumeIntInRange(0, len(choices) - 1)]


def long_run(fdp: Provider, pieces: list[bytes], max_count: int) -> bytes:
    """One time in eight a piece repeated up to ``max_count`` times, else nothing."""
    if fdp.ConsumeIntInRange(0, 7) != 7:
        return b""
    return pick(fdp, pieces) * fdp.ConsumeIntInRange(1, max_count)


# --- (1) the server protocol core --------------------------------------------------------

SERVER_TOKENS = server_harness.COMMANDS + [server_harness.TRANSACTION] + LINE_TOKENS
SERVER_OPTIONS = {
    "line_length_limit": [2048, 24, 64], "message_size_limit": [10240000, 0, 50],
    "bare_newline": ["normalize", "reject", "no"], "helo_required": [False, True],
    "vrfy_enabled": [True, False], "starttls_available": [False, True],
    "auth_mechanisms": [(), ("PLAIN", "LOGIN")],
}


def server(data: bytes) -> None:
    """Random streams answered by a driver that picks its replies from the data
    (or, half the time, a transaction, random content and QUIT, all accepted)."""
    fdp = Provider(data)
    session = ServerSession(hostname=server_harness.HOST,
                            **{name: pick(fdp, values) for name, values in SERVER_OPTIONS.items()})
    if fdp.ConsumeBool():
        transcript = server_harness.accepting_driver(session)
        stream = (server_harness.TRANSACTION + tokens(fdp, LINE_TOKENS, 60, b"a.\r\n", 200, 8)
                  + b"\r\n.\r\nQUIT\r\n")
    else:
        # Exhausted data picks the first (accepting) reply and never misuses the core.
        transcript = server_harness.Transcript(
            session, lambda choices: pick(fdp, choices),
            lambda: fdp.ConsumeIntInRange(0, 15) == 15)
        stream = tokens(fdp, SERVER_TOKENS, 40)
    for chunk in cut(fdp, stream, 12) + [b""]:
        transcript.feed(chunk)
    assert transcript.closed and session.state is State.CLOSED
    assert session.next_event() == ConnectionClosed()


# --- (2) the DATA reader ----------------------------------------------------------------

DATA_TAILS = [b"", b"QUIT\r\n", b".\r\n", b"\r\n.\r\n", b"x"]


def data_reader(data: bytes) -> None:
    """The same stream read whole and cut at data-chosen points gives the model's result."""
    fdp = Provider(data)
    options = {"reject": fdp.ConsumeBool(), "limit": pick(fdp, [10240000, 0, 20]),
               "max_line": pick(fdp, [2048, 8, 30])}
    stream = tokens(fdp, LINE_TOKENS, 30, b"a.\r\n", 100, 6)
    if fdp.ConsumeIntInRange(0, 7) != 7:   # now and then no end of data at all
        stream += b"\r\n.\r\n" + pick(fdp, DATA_TAILS)
    expected = data_harness.model(stream, **options)
    data_harness.same(data_harness.read([stream], **options), expected)
    data_harness.same(data_harness.read(cut(fdp, stream, 32), **options), expected)


# --- (3) the client core ----------------------------------------------------------------

REPLY_CODES = [b"250", b"220", b"354", b"221", b"421", b"451", b"550", b"554", b"334", b"",
               b"2", b"25", b"2500", b"099", b"650", b"abc"]
REPLY_SEPARATORS = [b" ", b"-", b"", b"\t"]
REPLY_TEXTS = [b"", b"2.0.0 Ok", b"5.1.1 <c@d.example>: Recipient address rejected",
               b"4.7.0 try\ragain", b"ok\0nul", b"\x1b[31mred", b"\xe2\x80\xa8Injected: yes",
               b"\xc2\x85Injected: yes", b"5.1.1", b"2.0.0", b"PIPELINING", b"SIZE 1000",
               b"8BITMIME", b"\xff\xfe", b"4.2.2 full", b"2.0.0 x\r\x00\x85"]
REPLY_ENDS = [b"\r\n", b"\n", b"\r\r\n", b"\r", b""]


def server_replies(fdp: Provider) -> bytes:
    out = []
    for _ in range(fdp.ConsumeIntInRange(0, 30)):
        kind = fdp.ConsumeIntInRange(0, 9)
        if kind == 9:
            out.append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 10)))
            continue
        if kind < 6:
            text = pick(fdp, REPLY_TEXTS)
        elif kind < 8:
            text = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 20))
        else:
            text = pick(fdp, [b"x", b"\r", b"x\r"]) * fdp.ConsumeIntInRange(1, 5000)
        out.append(pick(fdp, REPLY_CODES) + pick(fdp, REPLY_SEPARATORS) + text
                   + pick(fdp, REPLY_ENDS))
    return b"".join(out)


def client(data: bytes) -> None:
    """Random server replies, cut at random points, while a delivery sends its
    commands (0-3 more per reply, from the data): parsed replies or
    ClientProtocolError only, and every text handed on is printable."""
    fdp = Provider(data)
    server_bytes = server_replies(fdp)
    # Delivery draws one thing, how many commands to pipeline (0-3); exhausted data sends one.
    delivery = client_harness.Delivery(lambda _strategy, label=None:
                                       (fdp.ConsumeIntInRange(0, 3) + 1) % 4)
    for chunk in cut(fdp, server_bytes, 10):
        if not delivery.feed(chunk):
            break
    for reply, command in delivery.replies:
        for line in reply.text.split("\n"):
            assert text_violation(line) is None, (text_violation(line), reply)
        reason = reply_outcome(reply, client_harness.CONN, command).reason
        assert text_violation(reason) is None, (text_violation(reason), reason)


# --- (4) the header parsers and the content checker ---------------------------------------

HEADER_LINES = [b"Received: from a by b", b"received:x", b"Message-ID: <1@x>", b"Subject: s",
                b"X-Drop: d", b"X-Strip: s", b"To: t@x, <u@y>", b"X-Dot: d", b" cont", b"\tcont",
                b".", b"..", b".x", b"From: \"a, b\" <a@b> (c)", b"Cc: g: a@b, c@d;",
                b"Content-Type: multipart/mixed; boundary=b", b"Content-Type: message/rfc822",
                b"Content-Type: multipart/mixed; boundary=\"b\\\"q\"; boundary=c", b"Subject :x",
                b"\xff: 8bit", b"message-id:<2@y>", b"Received:"]
BODY_LINES = [b"", b".", b"..", b".x", b"--b", b"--b--", b"--c", b"BBB", b"CCC", b"DDD", b"EEE",
              b"FFF", b"GGG", b"Content-Type: text/plain", b"X-Drop: d",
              # Lines that break into pieces right before a "." at line_length_limit 16 or 40.
              b"A" * 15 + b".", b"A" * 16 + b".", b"A" * 16 + b"..", b"A" * 40 + b".x",
              b"A" * 39 + b"C.", b"A" * 32 + b"B", b"A" * 80 + b".", b"A" * 17 + b"."]
ADDRESS_NAMES = [b"To", b"From", b"Cc", b"Reply-To", b"Sender", b"Bcc", b"Subject"]
ADDRESS_TOKENS = [b"a@b", b"<c@d>", b"x", b"\"q u\"@e", b"(c)", b",", b";", b":", b"<", b">",
                  b"\"", b"\\", b"@", b" ", b"[1.2.3.4]", b"\xc3\xa9", b"\r\n\tfold"]
CONTENT_RULES = header_harness.RULE_SETS + [(header_harness.WARN_RULES, header_harness.WARN_RULES)]


def message(fdp: Provider, head: list[bytes], *, body: bool = True) -> bytes:
    """Wire form of ``head`` lines, an empty line and data-chosen body lines
    (headers only when ``body`` is False)."""
    content = head + ([b""] + lines(fdp, BODY_LINES, 20, b"A.B", 300) if body else [])
    return dot_stuff(b"\r\n".join(content) + b"\r\n") if content else b""


def header_scan(data: bytes) -> None:
    """The hop count and Message-ID of the primary header block do not depend on the cuts, also
    around header_size_limit (a pad header brings the block near it)."""
    fdp = Provider(data)
    head = lines(fdp, HEADER_LINES, 12, b"A. ,<@", 3000)
    if fdp.ConsumeIntInRange(0, 7) == 7:
        pad = header_harness.HEADER_SIZE_LIMIT - 9 + fdp.ConsumeIntInRange(-8, 8)
        head.insert(fdp.ConsumeIntInRange(0, len(head)), b"X-Pad: " + b"p" * pad)
    whole = message(fdp, head)
    pieces = cut(fdp, whole, 10)
    if fdp.ConsumeBool() and len(whole) > header_harness.HEADER_SIZE_LIMIT + 8:   # a cut near the limit
        at = header_harness.HEADER_SIZE_LIMIT + fdp.ConsumeIntInRange(-8, 8)
        pieces = [whole[:at], whole[at:]]
    assert header_harness.scan(pieces) == header_harness.scan([whole])


def content_checker(data: bytes) -> None:
    """header_checks/body_checks with IGNORE, STRIP, REPLACE, PREPEND and WARN on a
    small line_length_limit: the stored output is one DATA transmission (and
    unchanged when every rule only warns)."""
    fdp = Provider(data)
    rules = pick(fdp, CONTENT_RULES)
    limit = pick(fdp, [16, 40, 2048])
    whole = message(fdp, lines(fdp, HEADER_LINES, 12, b"A. ,<@", 3000))
    out, result = header_harness.check(whole, cut(fdp, whole, 10), rules, limit)
    if rules[0] is header_harness.WARN_RULES:
        assert out == whole and result.reply is None, out
    elif result.reply is None:
        assert_wire_form(out)
        assert stored_form_problem(out) is None, (stored_form_problem(out), out[:300])


def header_rewriter(data: bytes) -> None:
    """Address rewriting in headers (canonical/masquerade style functions, and
    the HeaderRewriter's own qualifying of myorigin): output in wire form, the
    header block stays well formed and the body is untouched."""
    fdp = Provider(data)
    head = []
    for _ in range(fdp.ConsumeIntInRange(0, 10)):
        if fdp.ConsumeBool():
            value = b"".join(pick(fdp, ADDRESS_TOKENS) for _ in range(fdp.ConsumeIntInRange(0, 12)))
            head.append(pick(fdp, ADDRESS_NAMES) + b": " + value)
        else:
            head += lines(fdp, HEADER_LINES, 1, b"A. ,<@", 3000)
    whole = message(fdp, head, body=fdp.ConsumeIntInRange(0, 3) != 3)
    rewrite = fdp.ConsumeIntInRange(0, len(header_harness.REWRITES))
    if rewrite == len(header_harness.REWRITES):
        stream = HeaderStream(HeaderRewriter.from_config(header_harness._rewrite_config()))
    else:
        stream = HeaderStream(header_harness.REWRITES[rewrite], pick(fdp, [102400, 64]))
    out = b"".join(stream.feed(piece) for piece in cut(fdp, whole, 10)) + stream.finish()
    assert_wire_form(out)
    if rewrite == 0:
        assert out == whole, out
    block = header_harness._header_block(whole)
    if block is not None:
        out_block = header_harness._header_block(out)
        assert out_block is not None, out
        assert out[len(out_block):] == whole[len(block):], out   # the body is never touched


# --- (5) the DSN builder ----------------------------------------------------------------

ATOMS = ["a", "b.c", "x-y", "z+tag", "first.last", "o'neil", "=", "_", "0"]
DOMAINS = ["example.com", "sub.example.net", "[192.0.2.1]", "x\r\nX-Injected: 1", "\u00e9.example"]
HOSTILE = ["a\r\nBcc: victim@example.com", "a\u2028Bcc: victim@example.com", "x\x85X-Injected: 1",
           "\rX-Injected: 1", "a\0b", "\u2029", "\x1b[2J", "\x80", "..", "\n.\n", "=?utf-8?q?x?="]
STATUSES = ["5.1.1", "4.4.1", "5.0.0", "4.2.2", "2.0.0", "", "9.9.9", "5.1"]


def text(fdp: Provider) -> str:
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 0:
        return pick(fdp, ATOMS)
    if kind == 1:
        return pick(fdp, HOSTILE)
    if kind == 2:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 20))
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 20)).decode("latin-1")


def address(fdp: Provider) -> str:
    return "".join(text(fdp) for _ in range(fdp.ConsumeIntInRange(1, 3))) + "@" + pick(fdp, DOMAINS)


def reply(fdp: Provider) -> Outcome:
    """A recipient's outcome as the queue keeps it: a remote server's reply taken
    through the client core and the delivery agent, or any text as older queues
    stored it."""
    if fdp.ConsumeBool():
        raw = (pick(fdp, [b"550", b"451", b"554", b"552"]) + b" "
               + pick(fdp, [b"5.1.1 ", b"4.7.0 ", b"", b"2.0.0 "])
               + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 60))
               + long_run(fdp, [b"x", b"x\r.", b"."], 3000)
               + pick(fdp, [b"\r\n", b"\n"]))
        parsed = dsn_harness.parsed_outcome(raw)
        if parsed is not None:
            return parsed
    return from_text(BOUNCED, f"{pick(fdp, STATUSES)} " + "".join(text(fdp) for _ in range(3)))


def dsn(data: bytes) -> None:
    """build_dsn with data-derived addresses and replies: check_dsn holds."""
    fdp = Provider(data)
    sender = "" if fdp.ConsumeIntInRange(0, 3) == 3 else address(fdp)
    recipients = [(address(fdp), address(fdp) if fdp.ConsumeBool() else None, reply(fdp))
                  for _ in range(fdp.ConsumeIntInRange(1, 4))]
    wire = dsn_harness.dsn(sender, recipients, pick(fdp, [FAILED, DELAYED]))
    check_dsn(wire, len(recipients))


TARGETS = {"server": server, "data_reader": data_reader, "client": client,
           "header_scan": header_scan, "content_checker": content_checker,
           "header_rewriter": header_rewriter, "dsn": dsn}
KNOWN_DEFECT = {
    "header_scan": "test_headers::test_header_scan_past_the_size_limit_does_not_depend_on_the_cuts",
    "header_rewriter": "test_headers::test_unclosed_quote_keeps_the_header_block",
}


def known_defect(name: str) -> str | None:
    """The xfail reason of the suite test that shows an open defect ``name`` can
    find, or None (no such test, or it is no longer marked xfail: fixed)."""
    if name not in KNOWN_DEFECT:
        return None
    module, test = KNOWN_DEFECT[name].split("::")
    function = getattr(importlib.import_module(f"tests.fuzz.{module}"), test, None)
    marks = [m for m in getattr(function, "pytestmark", []) if m.name == "xfail"]
    return marks[0].kwargs.get("reason", "xfail") if marks else None

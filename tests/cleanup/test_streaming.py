"""The checker on a stream of wire-form chunks: boundaries, memory, the fast path."""
import tracemalloc

import pytest

from relayd.cleanup import ContentChecker, ContentChecks
from relayd.smtp.replies import R451_QUEUE_WRITE_ERROR
from relayd.tables.base import Table, TemporaryLookupError
from tests.cleanup.conftest import CONTEXT, run

RULES = ("/^Subject: (.*)/ REPLACE X-Old-Subject: $1\n"
         "/^X-Mailer:/ IGNORE\n"
         "/^To:/ PREPEND X-Checked: yes\n"
         "/^Content-Disposition: attachment/ WARN attachment\n")
BODY_RULES = "/^\\.secret/ REPLACE .redacted\n/^drop me/ IGNORE\n/^--frontier--$/ HOLD\n"

MESSAGE = b"\r\n".join([
    b"Subject: quarterly",
    b"\tfigures",
    b"X-Mailer: Something",
    b"To: bob@example.net",
    b"Content-Type: multipart/mixed; boundary=frontier",
    b"",
    b"--frontier",
    b"Content-Disposition: attachment; filename=a.txt",
    b"",
    b"..secret number 42",
    b"drop me",
    b"..",
    b"...",
    b"--frontier--",
    b""])

EXPECTED = b"\r\n".join([
    b"X-Old-Subject: quarterly",
    b"\tfigures",
    b"X-Checked: yes",
    b"To: bob@example.net",
    b"Content-Type: multipart/mixed; boundary=frontier",
    b"",
    b"--frontier",
    b"Content-Disposition: attachment; filename=a.txt",
    b"",
    b"..redacted",
    b"..",
    b"...",
    b"--frontier--",
    b""])


@pytest.fixture
def checks(make_checks):
    return make_checks("header_checks = regexp:{dir}/hc\nbody_checks = regexp:{dir}/bc\n",
                       hc=RULES, bc=BODY_RULES)


def test_edits_come_back_in_wire_form(checks):
    out, result = run(ContentChecker(checks, CONTEXT), MESSAGE)
    assert out == EXPECTED
    assert result.warnings == ("attachment",) and result.hold == ""
    # Octets after dot-unstuffing: what the envelope's size must change by.
    assert result.size_delta == len(EXPECTED) - EXPECTED.count(b"\r\n.") \
        - (len(MESSAGE) - MESSAGE.count(b"\r\n."))


@pytest.mark.parametrize("step", [1, 2, 3, 4, 9, 17, 100])
def test_any_chunking_gives_the_same_bytes_and_result(checks, step):
    whole = run(ContentChecker(checks, CONTEXT), MESSAGE)
    assert run(ContentChecker(checks, CONTEXT), MESSAGE, step) == whole


def test_without_checks_feed_is_the_identity(make_checks):
    checks = make_checks("")
    assert not checks.active
    checker = ContentChecker(checks, CONTEXT)
    chunk = b"Subject: hi\r\n\r\nbody\r\n"
    assert checker.feed(chunk) is chunk
    rest, result = checker.finish()
    assert rest == b"" and result.reply is None and result.size_delta == 0


def test_when_nothing_matches_the_content_is_untouched(checks):
    message = MESSAGE.replace(b"Subject", b"Topic").replace(b"X-Mailer", b"X-Agent") \
        .replace(b"To:", b"Cc:").replace(b"drop me", b"keep me").replace(b"..secret", b"public")
    message = message.replace(b"--frontier--", b"--frontier-- ")   # no HOLD either
    for step in (1, 5, len(message)):
        out, result = run(ContentChecker(checks, CONTEXT), message, step)
        assert out == message and result.size_delta == 0 and result.hold is None


def test_after_the_last_boundary_feed_passes_chunks_through(make_checks):
    checks = make_checks("header_checks = regexp:{dir}/hc\n", hc="/^X-Never:/ REJECT\n")
    checker = ContentChecker(checks, CONTEXT)
    assert checker.feed(b"Subject: hi\r\n\r\n") == b"Subject: hi\r\n\r\n"
    chunk = b"body line\r\n" * 10
    assert checker.feed(chunk) is chunk


def test_a_message_without_final_crlf(checks):
    out, result = run(ContentChecker(checks, CONTEXT), b"Subject: a\r\n\r\nno newline at end")
    assert out == b"X-Old-Subject: a\r\n\r\nno newline at end"


def test_ten_megabytes_stay_bounded_in_memory(checks):
    part = b"\r\n".join([b"Subject: big", b"Content-Type: multipart/mixed; boundary=frontier",
                         b"", b"--frontier", b"Content-Type: application/octet-stream", b"", b""])
    body_line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"
    chunk = body_line * (65536 // len(body_line))
    checker = ContentChecker(checks, CONTEXT)
    tracemalloc.start()
    try:
        stored = len(checker.feed(part))
        for _ in range(10 * 1024 * 1024 // len(chunk)):
            stored += len(checker.feed(chunk))
        stored += len(checker.feed(b"--frontier--\r\n"))
        rest, result = checker.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stored + len(rest) == len(part) + 160 * len(chunk) + 14 + len(b"X-Old-")
    assert peak < 1024 * 1024
    assert result.hold == ""


def test_a_giant_header_and_a_giant_line_stay_bounded(checks):
    checker = ContentChecker(checks, CONTEXT)
    tracemalloc.start()
    try:
        stored = len(checker.feed(b"X-Big: start\r\n"))
        for _ in range(100):                       # a 6.5 MB folded header
            stored += len(checker.feed(b" " + b"h" * 65533 + b"\r\n"))
        stored += len(checker.feed(b"\r\n"))
        for _ in range(100):                       # a 6.5 MB body line without CRLF
            stored += len(checker.feed(b"b" * 65536))
        rest, result = checker.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stored + len(rest) == 14 + 100 * 65536 + 2 + 100 * 65536
    assert peak < 1024 * 1024


class BrokenTable(Table):
    def lookup(self, key):
        raise TemporaryLookupError("database is down")


def test_a_table_that_cannot_answer_defers_the_message(make_checks, caplog):
    checks = make_checks("header_checks = broken:x\n",
                         lambda spec, config: BrokenTable(spec, "x", config))
    out, result = run(ContentChecker(checks, CONTEXT), b"Subject: hi\r\n\r\nbody\r\n")
    assert result.reply == R451_QUEUE_WRITE_ERROR
    assert ("4F3A21C0B2: header_checks map lookup problem -- message not accepted, "
            "try again later") in caplog.text


def test_checks_are_opened_once_and_serve_many_messages(checks):
    assert isinstance(checks, ContentChecks)
    results = [run(ContentChecker(checks, CONTEXT), MESSAGE)[0] for _ in range(3)]
    assert results == [EXPECTED] * 3

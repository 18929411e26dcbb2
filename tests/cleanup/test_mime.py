"""Which table sees which line: primary, MIME, nested headers and body lines."""
import pytest

from relayd.cleanup import ContentChecker
from relayd.tables.base import Table, open_table
from tests.cleanup.conftest import CONTEXT, run

ALL_FOUR = ("header_checks = rec:header\nmime_header_checks = rec:mime\n"
            "nested_header_checks = rec:nested\nbody_checks = rec:body\n")


class RecordingTable(Table):
    """Answers nothing; remembers every key it was asked, by the table's name."""

    def __init__(self, spec, name, config=None, seen=None):
        super().__init__(spec, name, config)
        self.seen = seen

    def lookup(self, key):
        self.seen.append((self.name, key))
        return None


@pytest.fixture
def recorded(make_checks):
    """``recorded(message, main_cf=ALL_FOUR, step=None)`` -> [(table, key), ...]."""
    def record(message, main_cf=ALL_FOUR, step=None):
        seen = []

        def opener(spec, config):
            if spec.startswith("rec:"):
                return RecordingTable(spec, spec[4:], config, seen)
            return open_table(spec, config)
        checks = make_checks(main_cf, opener)
        out, result = run(ContentChecker(checks, CONTEXT), message, step)
        assert out == message   # nothing matched: the content is stored untouched
        return seen
    return record


MULTIPART = b"\r\n".join([
    b"From: alice@example.org",
    b"Subject: report",
    b"MIME-Version: 1.0",
    b"Content-Type: multipart/mixed;",
    b' boundary="outer"',
    b"",
    b"This is a multi-part message in MIME format.",
    b"--outer",
    b"Content-Type: text/plain; charset=us-ascii",
    b"X-Part-Note: part header",
    b"",
    b"part one",
    b"--outer",
    b"Content-Type: message/rfc822",
    b"",
    b"Subject: forwarded",
    b"Content-Type: text/plain",
    b"",
    b"nested body",
    b"--outer--",
    b"epilogue",
    b""])

EXPECTED = [
    ("header", "From: alice@example.org"),
    ("header", "Subject: report"),
    ("mime", "MIME-Version: 1.0"),
    ("mime", 'Content-Type: multipart/mixed;\n boundary="outer"'),
    ("body", "This is a multi-part message in MIME format."),
    ("body", "--outer"),
    ("mime", "Content-Type: text/plain; charset=us-ascii"),
    ("mime", "X-Part-Note: part header"),   # every header after a boundary is a MIME header
    ("body", "part one"),
    ("body", "--outer"),
    ("mime", "Content-Type: message/rfc822"),
    ("nested", "Subject: forwarded"),
    ("mime", "Content-Type: text/plain"),
    ("body", "nested body"),
    ("body", "--outer--"),
    ("body", "epilogue"),
]


def test_each_line_goes_to_its_table(recorded):
    # Empty lines never match (and are never looked up), as in Postfix's maps_find().
    assert recorded(MULTIPART) == EXPECTED


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 64])
def test_chunk_boundaries_change_nothing(recorded, step):
    assert recorded(MULTIPART, step=step) == EXPECTED


def test_mime_and_nested_checks_default_to_header_checks(recorded):
    seen = recorded(MULTIPART, main_cf="header_checks = rec:header\n")
    assert seen == [("header", key) for table, key in EXPECTED if table != "body"]


def test_only_header_checks_leaves_attachments_alone(recorded):
    seen = recorded(MULTIPART, main_cf="header_checks = rec:header\nmime_header_checks =\n"
                                       "nested_header_checks =\n")
    assert seen == [("header", "From: alice@example.org"), ("header", "Subject: report")]


def test_folded_header_is_one_key_with_its_newlines(recorded):
    message = b"Subject: one\r\n two\r\n\tthree\r\nTo: b@example.net\r\n\r\nbody\r\n"
    assert recorded(message, main_cf="header_checks = rec:h\n") == [
        ("h", "Subject: one\n two\n\tthree"), ("h", "To: b@example.net")]


def test_obsolete_blank_before_colon_is_normalised(recorded):
    assert recorded(b"Subject : hi\r\n\r\n", main_cf="header_checks = rec:h\n") == [
        ("h", "Subject: hi")]


def test_a_non_header_line_ends_the_headers(recorded):
    message = b"Subject: hi\r\nthis is no header\r\nX-Not: a header now\r\n"
    assert recorded(message) == [("header", "Subject: hi"), ("body", "this is no header"),
                                 ("body", "X-Not: a header now")]


def test_dot_stuffed_lines_are_looked_up_unstuffed(recorded):
    message = b"..Odd-Header: dotted name\r\n\r\n..\r\n...leading dots\r\n"
    assert recorded(message) == [("header", ".Odd-Header: dotted name"), ("body", "."),
                                 ("body", "..leading dots")]


def test_nested_boundaries_and_digest_defaults(recorded):
    message = b"\r\n".join([
        b"Content-Type: multipart/mixed; boundary=a",
        b"",
        b"--a",
        b"Content-Type: multipart/digest; boundary=b",
        b"",
        b"--b",
        b"",                      # digest part: message/rfc822 by default
        b"Subject: digest item",
        b"",
        b"item body",
        b"--a--",                 # closes b as well
        b"after",
        b"--b",                   # no longer a boundary
        b"Subject: not a header",
        b""])
    assert recorded(message) == [
        ("mime", "Content-Type: multipart/mixed; boundary=a"),
        ("body", "--a"),
        ("mime", "Content-Type: multipart/digest; boundary=b"),
        ("body", "--b"),
        ("nested", "Subject: digest item"),
        ("body", "item body"),
        ("body", "--a--"),
        ("body", "after"),
        ("body", "--b"),
        ("body", "Subject: not a header"),
    ]


def test_primary_message_rfc822_has_nested_headers(recorded):
    message = b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ntext\r\n"
    assert recorded(message) == [("mime", "Content-Type: message/rfc822"),
                                 ("nested", "Subject: inner"), ("body", "text")]


def test_disable_mime_input_processing(recorded):
    seen = recorded(MULTIPART, main_cf=ALL_FOUR + "disable_mime_input_processing = yes\n")
    # MIME headers are still told by name; the structure is not followed.
    assert ("mime", "MIME-Version: 1.0") in seen
    assert ("body", "Content-Type: text/plain; charset=us-ascii") in seen
    assert ("nested", "Subject: forwarded") not in seen


def test_body_checks_size_limit_counts_per_body_part(recorded):
    filler = b"x" * 99
    message = b"\r\n".join([b"Content-Type: multipart/mixed; boundary=z", b"",
                            *[filler] * 3, b"late", b"--z", b"", b"early", b""])
    seen = recorded(message, main_cf="body_checks = rec:b\nbody_checks_size_limit = 250\n")
    # The empty line is at offset 0, the fillers at 1, 101 and 201 (under 250),
    # "late" at 301 is not, nor is the boundary; the new part starts again at 0.
    assert seen == [("b", filler.decode())] * 3 + [("b", "early")]


def test_long_lines_are_checked_in_pieces(recorded):
    long_line = b"A" * 2048 + b"B" * 100
    seen = recorded(b"Subject: x\r\n\r\n" + long_line + b"\r\n--not\r\n",
                    main_cf="body_checks = rec:b\n")
    assert seen == [("b", "A" * 2048), ("b", "B" * 100), ("b", "--not")]

"""relayd's own parsing of header data is linear in the header (issue 7, item 7a).

The shortcut that lets a plain "To: Name <a@b.example>" header through
without rewriting was a backtracking regex: "To:" and 8 KB of blanks took
0.15 s, 100 KB about a minute of the only event loop. Its repetitions are
possessive now, as the command grammar's are (tests/smtp/test_grammar_linear.py
checks the shape of both, and of the header run's pattern); these tests
assert what comes out, inside a hang guard.
"""
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from relayd.cleanup.headers import HeaderRewriter, HeaderStream, _one_qualified
from tests.support.bounds import hang_guard

# The backtracking regex it replaced: the reference for what it must accept.
_REFERENCE = re.compile(rb'[^:\r\n]+:[ \t]*(?:[^<>,@"()\\:;\r\n]*<[^<>,@\s"()\\]+@[^<>,@\s"()\\]+>'
                        rb'|[^<>,@\s"()\\:;]+@[^<>,@\s"()\\]+)[ \t]*\r\n\Z')


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"To", b":", b" ", b"\t", b"<", b">", b"@", b"a", b"b.c",
                                 b",", b";", b'"', b"(", b")", b"\\", b"\r", b"\n", b"\r\n",
                                 b"\x0b", b"Bob Smith "]), max_size=12).map(b"".join))
def test_it_accepts_exactly_what_the_backtracking_regex_accepted(text):
    for line in (text, text + b"\r\n", b"To: " + text + b"\r\n"):
        assert _one_qualified(line) == bool(_REFERENCE.match(line)), line


def _rewrite(make_config, header: bytes) -> bytes:
    rewriter = HeaderRewriter.from_config(make_config(), "127.0.0.1")
    assert rewriter.active and rewriter.qualify_only
    with hang_guard():
        stream = HeaderStream(rewriter)
        return stream.feed(header + b"Subject: s\r\n\r\nbody\r\n") + stream.finish()


def test_a_to_line_of_100_kb_of_blanks_is_passed_on_at_once(make_config):
    header = b"To:" + b" \t" * 50000 + b"x\r\n"
    out = _rewrite(make_config, header)
    assert out == b"To:" + b" \t" * 50000 + b"x@example.com\r\nSubject: s\r\n\r\nbody\r\n"


def test_a_long_display_name_before_an_address_is_passed_on_at_once(make_config):
    header = b"To: " + b"Bob " * 25000 + b"<bob@example.net>\r\n"
    assert _rewrite(make_config, header).startswith(header)

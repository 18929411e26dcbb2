"""The stored-form invariant (relayd.smtp.wireform.StoredForm) and the content
checker's edits against it: whatever a client sends and whatever the
header_checks/body_checks do, the checker's output followed by ".\\r\\n" is
exactly one DATA transmission.

The property tests run the client's bytes through relayd's own DATA reader
(the only way content reaches the checker), cut the reader's output into
random chunks, and use small line_length_limit / header_size_limit values so
that pieces, held headers and flushed giant headers all occur in short inputs.
"""
import itertools
import logging
import os
import tempfile

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from relayd.cleanup import ContentChecker, ContentChecks
from relayd.config import load_config
from relayd.queue.committer import QueueWriteError
from relayd.queue.envelope import Envelope, Recipient
from relayd.queue.store import QueueStore
from relayd.smtp.data import DataReader
from relayd.smtp.events import DataChunk
from relayd.smtp.wireform import StoredForm, crlf_newlines_only, stored_form_problem
from tests.cleanup.conftest import CONTEXT, run
from tests.fuzz.harness import fuzz_settings
from tests.fuzz.oracles import wire_form_violation
from tests.support.bounds import hang_guard

# --- the invariant itself ------------------------------------------------------------


@pytest.mark.parametrize("data, problem", [
    (b"", None),
    (b"a\r\n", None),
    (b"a\r\n..\r\n.x\r\n\r\n", None),
    (b".\r\n", 'a lone "." line at octet 0'),
    (b"a\r\n.\r\nMAIL FROM:<x>\r\n", 'a lone "." line at octet 3'),
    (b"a\rb\r\n", "bare CR at octet 1"),
    (b"a\nb\r\n", "bare LF at octet 1"),
    (b"\nb\r\n", "bare LF at octet 0"),
    (b"a\0\r\n", "NUL at octet 1"),
    # As many CRs as LFs, in CR-then-LF order, but not adjacent: both are bare.
    (b"a\rb\nc\r\n", "bare CR at octet 1"),
    (b"a\r\r\n\n", "bare CR at octet 1"),
    (b"ab\n\r\n", "bare LF at octet 2"),
    (b"a\r\nb", "no line end at the end (octet 4)"),
])
def test_stored_form_problems_are_named(data, problem):
    assert stored_form_problem(data) == problem


def _reference(data: bytes) -> bool:
    """The invariant said the slow, obvious way: True when *data* is fine."""
    if data and not data.endswith(b"\r\n") or b"\0" in data:
        return False
    lines = data.split(b"\r\n")[:-1]
    return all(b"\r" not in line and b"\n" not in line and line != b"." for line in lines)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40).map(lambda b: b.translate(bytes.maketrans(
    bytes(range(256)), (b"a.\r\n\0" * 52)[:256]))), st.lists(st.integers(0, 40), max_size=5))
@example(b"a\rb\nc\r\n", [2])
@example(b"x\r.\n\r\n", [])
def test_the_incremental_check_agrees_with_the_obvious_one_wherever_chunks_are_cut(data, cuts):
    form = StoredForm()
    previous = 0
    for cut in sorted(min(c, len(data)) for c in cuts) + [len(data)]:
        form.feed(data[previous:cut])
        previous = cut
    assert (form.finish() is None) == _reference(data)
    assert (stored_form_problem(data) is None) == _reference(data)


def _clean_inside(piece: bytes) -> bool:
    """What the DATA reader promises of a chunk it marks ``checked``."""
    return b"\0" not in piece and crlf_newlines_only(piece) and b"\r\n.\r\n" not in piece


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40).map(lambda b: b.translate(bytes.maketrans(
    bytes(range(256)), (b"a.\r\n\0" * 52)[:256]))), st.lists(st.integers(0, 40), max_size=6))
@example(b"a\r\n.\r\nx\r\n", [3])        # a lone "." made by the junction of two clean chunks
@example(b"ab\nc\r\n", [2])                # a clean chunk starting with LF after one without CR
def test_chunks_checked_where_they_were_made_are_judged_at_their_junctions(data, cuts):
    """Trusting the DATA reader's clean chunks never lets a bad stream through:
    what their junctions make is still caught."""
    form = StoredForm()
    previous = 0
    for cut in sorted(min(c, len(data)) for c in cuts) + [len(data)]:
        piece = data[previous:cut]
        form.feed(piece, checked=_clean_inside(piece))
        previous = cut
    assert (form.finish() is None) == _reference(data)


# --- the queue refuses content that fails it -----------------------------------------

def test_the_queue_refuses_and_drops_content_that_would_end_the_data_early(tmp_path, caplog):
    store = QueueStore(str(tmp_path), inline_limit=64)
    store.open()
    qid = store.new_queue_id()
    writer = store.content_writer(qid)
    writer.write(b"Subject: x\r\n\r\n" + b"A" * 100 + b"\r\n")   # spills to a data file
    writer.write(b".\r\nMAIL FROM:<ceo@victim.example>\r\n")
    env = Envelope(sender="a@example.org", recipients=[Recipient("b@example.net")],
                   arrival_time=0.0, client_name="c", client_addr="192.0.2.1", size=0)
    with caplog.at_level(logging.WARNING, logger="relayd.cleanup"), \
            pytest.raises(QueueWriteError, match='a lone "." line at octet 116'):
        store.commit(qid, env, writer)
    assert f'{qid}: message refused: its stored form is not one DATA transmission' in caplog.text
    assert store.get(qid) is None
    assert os.listdir(tmp_path / "data") == []
    store.close()


# --- the checker's output always meets it --------------------------------------------

# Patterns that hit pieces of long lines, dots, boundaries and headers.
PATTERNS = ("/^A{4}/", "/^\\./", "/^\\.$/", "/x/", "/^-/", "/^Subject:/", "/^[^:]*$/")
ACTIONS = {
    # action: (header_checks value, body_checks value)
    "IGNORE": ("IGNORE", "IGNORE"),
    "STRIP": ("STRIP why", "STRIP why"),
    "REPLACE": ("REPLACE X-Replaced: .$1", "REPLACE .$1"),
    "PREPEND": ("PREPEND .X-Odd: name", "PREPEND ."),
    "PREPEND2": ("PREPEND X-Was: $1", "PREPEND .$1"),   # $1 of a folded header: two lines
    "WARN": ("WARN w", "WARN w"),
    "INFO": ("INFO i", "INFO i"),
    "REJECT": ("REJECT no", "REJECT no"),
    "DEFER": ("REJECT 4.7.1 later", "REJECT 4.7.1 later"),
    "DISCARD": ("DISCARD d", "DISCARD d"),
    "HOLD": ("HOLD h", "HOLD h"),
    "REDIRECT": ("REDIRECT x@example.net", "REDIRECT x@example.net"),
    "FILTER": ("FILTER smtp:[127.0.0.1]:10025", "FILTER smtp:[127.0.0.1]:10025"),
    "BCC": ("BCC y@example.net", "BCC y@example.net"),
    "PASS": ("PASS", "PASS"),
    "DUNNO": ("DUNNO", "DUNNO"),
}
# The actions that never change a line: the output is the input, byte for byte.
KEEPING = {"WARN", "INFO", "REJECT", "DEFER", "DISCARD", "HOLD", "REDIRECT", "FILTER", "BCC",
           "PASS", "DUNNO"}
LIMITS = [(8, 64, 0), (16, 40, 100), (2048, 102400, 51200)]

_TABLES = tempfile.mkdtemp(prefix="relayd-stored-form-")
_CHECKS: dict = {}


def _checks(action: str, limits: tuple[int, int, int]) -> ContentChecks:
    """The checks for one action and one set of limits, built once."""
    key = (action, limits)
    if key not in _CHECKS:
        header, body = ACTIONS[action]
        name = f"{_TABLES}/{action}"
        for suffix, value in (("h", header), ("b", body)):
            with open(name + suffix, "w") as f:
                # "$1" needs a group: the REPLACE rules capture the whole key.
                f.writelines(f"{p[:-1]}(.*)/ {value}\n" if "$1" in value else f"{p} {value}\n"
                             for p in PATTERNS)
        line, header_limit, body_limit = limits
        _CHECKS[key] = ContentChecks.from_config(load_config(main_cf=(
            f"header_checks = regexp:{name}h\nbody_checks = regexp:{name}b\n"
            f"line_length_limit = {line}\nheader_size_limit = {header_limit}\n"
            f"body_checks_size_limit = {body_limit}\n")))
    return _CHECKS[key]


# What a client sends: lines from a vocabulary that matters to the checker.
_WORDS = [b"A", b"AAAA", b"A" * 7, b".", b"..", b"-", b"--b", b"x", b" ", b"\t", b":",
          b"Subject: s", b"Content-Type: multipart/mixed; boundary=b", b"\r", b"\n", b"\0",
          b"\r\n", b"\n.\n", b"\r\n.\n"]
_LINE = st.one_of(
    st.lists(st.sampled_from(_WORDS), max_size=8).map(b"".join),
    # around and far beyond the piece size, with dots at piece starts
    st.tuples(st.sampled_from([7, 8, 9, 15, 16, 17, 2047, 2048, 2049, 4096, 5000]),
              st.sampled_from([b"", b".", b"..", b".x", b"A"])).map(lambda t: b"A" * t[0] + t[1]),
)
_CONTENT = st.lists(_LINE, max_size=12).map(lambda lines: b"\r\n".join(lines) + b"\r\n")


def _client_to_wire(client: bytes, cuts: list[int]) -> list[bytes]:
    """What relayd's DATA reader hands on for *client* (its end mark added),
    the input arriving in pieces cut at *cuts*."""
    reader = DataReader(message_size_limit=0, max_line=2048 + 2, bare_lf_error=None)
    sent = client + b".\r\n" if client.endswith(b"\r\n") else client + b"\r\n.\r\n"
    buf, chunks, previous = bytearray(), [], 0
    for cut in sorted(set(min(c, len(sent)) for c in cuts)) + [len(sent)]:
        buf += sent[previous:cut]
        previous = cut
        while (event := reader.next_event(buf)) is not None:
            if not isinstance(event, DataChunk):
                return chunks
            chunks.append(event.data)
    return chunks


def _rechunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted(set(min(c, len(data)) for c in cuts))
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=_CONTENT, action=st.sampled_from(sorted(ACTIONS)),
       limits=st.sampled_from(LIMITS), reader_cuts=st.lists(st.integers(0, 6000), max_size=4),
       cuts=st.lists(st.integers(0, 6000), max_size=6))
@example(content=b"line1\r\n" + b"A" * 2048 + b".\r\nMAIL FROM:<ceo@victim>\r\n",
         action="IGNORE", limits=LIMITS[2], reader_cuts=[], cuts=[])
@example(content=b"line1\r\n" + b"A" * 16 + b".\r\n", action="PREPEND", limits=LIMITS[1],
         reader_cuts=[], cuts=[3, 20])
def test_checker_output_is_always_one_data_transmission(content, action, limits, reader_cuts,
                                                        cuts):
    wire = b"".join(_client_to_wire(content, reader_cuts))
    assert stored_form_problem(wire) is None       # the DATA reader's own promise
    checker = ContentChecker(_checks(action, limits), CONTEXT)
    logging.disable(logging.CRITICAL)     # the actions log every line they touch
    try:
        out = [checker.feed(chunk) for chunk in _rechunk(wire, cuts)]
        rest, result = checker.finish()
    finally:
        logging.disable(logging.NOTSET)
    stored = b"".join(out) + rest
    assert stored_form_problem(stored) is None
    if action in KEEPING:
        assert stored == wire
    unstuffed = len(stored) - stored.count(b"\r\n.") - stored.startswith(b".")
    original = len(wire) - wire.count(b"\r\n.") - wire.startswith(b".")
    assert result.size_delta == unstuffed - original


def test_a_dropped_first_piece_leaves_the_rest_of_the_line_stuffed(make_checks):
    checks = make_checks("body_checks = regexp:{dir}/bc\n", bc="/^A{20}/ IGNORE\n")
    out, _ = run(ContentChecker(checks, CONTEXT), b"\r\nline1\r\n" + b"A" * 2048 + b".\r\nMAIL\r\n")
    assert out == b"\r\nline1\r\n..\r\nMAIL\r\n"


def test_a_dropped_last_piece_keeps_the_line_end(make_checks):
    checks = make_checks("body_checks = regexp:{dir}/bc\n", bc="/^tail$/ IGNORE\n")
    out, result = run(ContentChecker(checks, CONTEXT), b"\r\n" + b"A" * 2048 + b"tail\r\nnext\r\n")
    assert out == b"\r\n" + b"A" * 2048 + b"\r\nnext\r\n"
    assert result.size_delta == -4


def test_a_replaced_later_piece_is_not_stuffed_mid_line(make_checks):
    checks = make_checks("body_checks = regexp:{dir}/bc\n", bc="/^\\.x$/ REPLACE .y\n")
    out, _ = run(ContentChecker(checks, CONTEXT), b"\r\n" + b"A" * 2048 + b".x\r\n")
    assert out == b"\r\n" + b"A" * 2048 + b".y\r\n"


def test_a_prepend_before_a_later_piece_goes_on_a_line_of_its_own(make_checks):
    checks = make_checks("body_checks = regexp:{dir}/bc\n", bc="/^\\.$/ PREPEND .tag\n")
    out, _ = run(ContentChecker(checks, CONTEXT), b"\r\n" + b"A" * 2048 + b".\r\n")
    assert out == b"\r\n" + b"A" * 2048 + b"\r\n..tag\r\n..\r\n"


@pytest.mark.parametrize("value", [b" " * 100000, b'"\\' * 50000, b"; a=" * 25000,
                                   b'x; boundary="' + b"\\\\" * 49990])
def test_a_hostile_100_kb_content_type_is_parsed_in_one_pass(make_checks, value):
    """The MIME tokenizer on client data: linear whatever the value holds."""
    checks = make_checks("header_checks = regexp:{dir}/hc\n", hc="/^X-Never:/ WARN\n")
    message = b"Content-Type: multipart/mixed;" + value + b"\r\n\r\nbody\r\n"
    with hang_guard():
        out, result = run(ContentChecker(checks, CONTEXT), message)
    assert out == message and result.reply is None


# Bytes that make wire-form trouble, and short lines around them.
_WIRE_BYTES = st.lists(st.one_of(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"\0", b"a"]),
                                 st.binary(max_size=4)), max_size=24).map(b"".join)


@fuzz_settings(500)
@given(data=_WIRE_BYTES, cuts=st.lists(st.integers(0, 100), max_size=6))
def test_stored_form_and_the_fuzz_oracle_agree(data, cuts):
    """One invariant: the queue's check (StoredForm, fed in random pieces) refuses
    exactly what the fuzz harnesses' oracle calls a broken wire form."""
    form = StoredForm()
    previous = 0
    for cut in sorted(min(c, len(data)) for c in cuts) + [len(data)]:
        form.feed(data[previous:cut])
        previous = cut
    assert (form.finish() is None) == (wire_form_violation(data) is None), data

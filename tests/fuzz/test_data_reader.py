"""Fuzz the DATA reader (relayd/smtp/data.py): random content, every chunking.

Oracles: the result (wire form, DataEnd, what follows the end) does not
depend on where the reads cut the stream; it equals a slow line-by-line
model of the module's rules (the first CRLF.CRLF ends the data; bare LF
becomes CRLF and with smtpd_forbid_bare_newline = reject refuses the
message; a lone "." line next to a bare LF is dropped; bare CR and NUL become
SP); the wire form is one DATA transmission (oracles.assert_wire_form) and
the reader's buffer stays within about max_line bytes.
"""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relayd.smtp.data import DataReader
from relayd.smtp.events import DataChunk, DataEnd
from relayd.smtp.replies import R550_BARE_NEWLINE, R552_MESSAGE_TOO_BIG
from tests.fuzz.harness import LINE_TOKENS, fuzz_settings, long_runs, split, stream_of
from tests.fuzz.oracles import assert_wire_form, dot_unstuff

BARE_LF = R550_BARE_NEWLINE.format("relay.example")
_NEUTRAL = bytes.maketrans(b"\r\0", b"  ")
CONTENT = stream_of(st.one_of(st.sampled_from(LINE_TOKENS), st.binary(max_size=6),
                              long_runs(b"a.\r\n", 100)), 30)
TAIL = st.sampled_from([b"", b"QUIT\r\n", b".\r\n", b"\r\n.\r\n", b"x"])
OPTIONS = st.fixed_dictionaries({"reject": st.booleans(), "limit": st.sampled_from([0, 20, 10240000]),
                                 "max_line": st.sampled_from([8, 30, 2048])})


def read(pieces: list[bytes], *, reject: bool, limit: int, max_line: int):
    """Feed ``pieces`` one read at a time: (wire, DataEnd, the rest), or None without an end."""
    reader = DataReader(message_size_limit=limit, max_line=max_line,
                        bare_lf_error=BARE_LF if reject else None)
    buf, chunks = bytearray(), []
    for index, piece in enumerate(pieces):
        buf += piece
        while (event := reader.next_event(buf)) is not None:
            if isinstance(event, DataEnd):
                wire = b"".join(chunks)
                assert_wire_form(wire, complete=event.error is None)
                return wire, event, bytes(buf) + b"".join(pieces[index + 1:])
            assert isinstance(event, DataChunk) and event.data
            chunks.append(event.data)
        assert len(buf) <= max_line + 2, len(buf)
    return None


def model(stream: bytes, *, reject: bool, limit: int, max_line: int):
    """The same result, line by line and all at once: what data.py's rules say."""
    if stream.startswith(b".\r\n"):
        return b"", DataEnd(0, None), stream[3:]
    end = stream.find(b"\r\n.\r\n")
    if end < 0:
        return None
    out, prev_bare, bare_seen = [], False, False
    for line in stream[:end + 2].split(b"\n")[:-1]:
        bare = not line.endswith(b"\r")
        body = line if bare else line[:-1]
        bare_seen = bare_seen or bare
        if not (body == b"." and (bare or prev_bare)):
            out.append(body.translate(_NEUTRAL) + b"\r\n")
        prev_bare = bare
    wire = b"".join(out)
    size = len(dot_unstuff(wire))
    errors = [e for e, on in ((BARE_LF, reject and bare_seen),
                              (R552_MESSAGE_TOO_BIG, 0 < limit < size)) if on]
    # With both, which one is reported depends on where the reads cut (either refuses).
    error = errors[0] if len(errors) == 1 else ("either" if errors else None)
    return wire, DataEnd(size, error), stream[end + 5:]


def same(result, expected) -> None:
    if expected is None:
        assert result is None
        return
    wire, end, rest = result
    e_wire, e_end, e_rest = expected
    assert (end.size, rest) == (e_end.size, e_rest)
    if e_end.error == "either":
        assert end.error in (BARE_LF, R552_MESSAGE_TOO_BIG)
    else:
        assert end.error == e_end.error
    if end.error is None:
        assert wire == e_wire
        assert_wire_form(wire)


@fuzz_settings(600)
@given(options=OPTIONS, content=CONTENT, tail=TAIL, data=st.data())
def test_data_reader_matches_the_model(options, content, tail, data):
    stream = content + b"\r\n.\r\n" + tail
    same(read(data.draw(split(stream, 12), label="reads"), **options), model(stream, **options))


@fuzz_settings(150)
@given(options=OPTIONS, content=stream_of(st.sampled_from(LINE_TOKENS), 12), tail=TAIL)
def test_data_reader_every_cut_gives_the_same_result(options, content, tail):
    stream = content + b"\r\n.\r\n" + tail
    expected = model(stream, **options)
    same(read([stream], **options), expected)
    same(read([stream[i:i + 1] for i in range(len(stream))], **options), expected)
    for cut in range(1, len(stream)):
        same(read([stream[:cut], stream[cut:]], **options), expected)

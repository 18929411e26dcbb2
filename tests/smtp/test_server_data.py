"""The DATA phase: end of data, wire form, smuggling, size limit, fuzz."""
import random

import pytest

from relayd.smtp import replies as R
from relayd.smtp.events import (
    Auth, AuthResponse, BadCommand, ConnectionClosed, Data, DataChunk, DataEnd, Expn, Helo,
    Help, Mail, Noop, Quit, Rcpt, Rset, StartTLS, Vrfy)
from tests.fuzz.oracles import assert_wire_form
from tests.smtp.test_server_transcripts import HOST, Driver

ENVELOPE = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
MODES = ("normalize", "reject", "no")


def messages(driver):
    """[(wire form, DataEnd)] for each message the driver received."""
    out, chunks = [], []
    for event in driver.events:
        if isinstance(event, DataChunk):
            chunks.append(event.data)
        elif isinstance(event, DataEnd):
            out.append((b"".join(chunks), event))
            chunks = []
    return out


def transfer(content, *pieces_at, **options):
    """Send ENVELOPE + content, split at the given offsets; return the driver."""
    data = ENVELOPE + content
    cuts = [0, *pieces_at, len(data)]
    return Driver(**options).feed(*(data[a:b] for a, b in zip(cuts, cuts[1:])))


def test_wire_form_keeps_dot_stuffing_and_size_counts_unstuffed_octets():
    driver = transfer(b"..leading dot\r\n...\r\nend\r\n.\r\n")
    [(wire, end)] = messages(driver)
    assert wire == b"..leading dot\r\n...\r\nend\r\n"
    assert end == DataEnd(len(b".leading dot\r\n..\r\nend\r\n"), None)
    assert driver.written.endswith(R.R250_QUEUED.format("4ABC123").to_bytes())


def test_empty_message_first_line_dot():
    [(wire, end)] = messages(transfer(b".\r\n"))
    assert wire == b"" and end == DataEnd(0, None)


def test_end_marker_split_at_every_boundary():
    content = b"Subject: x\r\n\r\n.a\r\nb\r\n.\r\nNOOP\r\n"
    expected = transfer(content)
    assert [w for w, _ in messages(expected)] == [b"Subject: x\r\n\r\n.a\r\nb\r\n"]
    for cut in range(len(ENVELOPE), len(ENVELOPE) + len(content)):
        driver = transfer(content, cut)
        assert messages(driver) == messages(expected), cut
        assert driver.written == expected.written
    data = ENVELOPE + content
    byte_by_byte = transfer(content, *range(1, len(data)))
    assert messages(byte_by_byte) == messages(expected)
    assert byte_by_byte.events[-1] == Noop()


def test_commands_pipelined_after_the_end_are_parsed():
    driver = transfer(b"one\r\n.\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n")
    assert [w for w, _ in messages(driver)] == [b"one\r\n", b"two\r\n"]
    assert driver.written.endswith(R.R221_BYE.to_bytes())


SMUGGLING = [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r\r\n", b"\r\n.\0\r\n",
             b"\n.\0\n", b"\r\n\n.\n\n"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", SMUGGLING)
def test_smuggling_variants_give_exactly_one_message(mode, variant):
    content = (b"Subject: one\r\n\r\nhello" + variant +
               b"MAIL FROM:<evil@attacker>\r\nRCPT TO:<victim@example>\r\nDATA\r\n"
               b"smuggled\r\n.\r\nQUIT\r\n")
    driver = transfer(content, bare_newline=mode)
    [(wire, end)] = messages(driver)
    assert [e for e in driver.events if isinstance(e, Mail)] == [Mail("a@b", {})]
    assert driver.events[-2:] == [Quit(), ConnectionClosed()]
    if mode == "reject" and b"\n" in variant.replace(b"\r\n", b""):
        assert end.error == R.R550_BARE_NEWLINE.format(HOST)
        assert driver.written.endswith(end.error.to_bytes() + R.R221_BYE.to_bytes())
        return
    assert end.error is None
    assert_wire_form(wire)
    assert b"MAIL FROM:<evil@attacker>\r\n" in wire  # the smuggled commands are just content


def test_bare_lf_normalised_to_crlf():
    [(wire, end)] = messages(transfer(b"a\nb\r\n.x\n\r\n.\r\n"))
    assert wire == b"a\r\nb\r\n.x\r\n\r\n"
    assert end.size == len(b"a\r\nb\r\nx\r\n\r\n")


def test_bare_cr_and_nul_become_spaces():
    [(wire, end)] = messages(transfer(b"a\rb\0c\r\r\n.\r\n", bare_newline="reject"))
    assert wire == b"a b c \r\n" and end.error is None


def test_bare_lf_in_reject_mode_refuses_the_message_but_keeps_the_session():
    driver = transfer(b"a\nb\r\n.\r\nMAIL FROM:<x@y>\r\n", bare_newline="reject")
    [(wire, end)] = messages(driver)
    assert wire == b"" and end.error == R.R550_BARE_NEWLINE.format(HOST)
    assert driver.written.endswith(R.R550_BARE_NEWLINE.format(HOST).to_bytes()
                                   + R.R250_SENDER_OK.to_bytes())


@pytest.mark.parametrize("length, error", [(100, None), (101, R.R552_MESSAGE_TOO_BIG)])
def test_size_limit(length, error):
    body = b"..\r\n" * 20 + b"x" * (length - 62) + b"\r\n"  # 20 * 3 + (length - 62) + 2 unstuffed
    driver = transfer(body + b".\r\nRSET\r\n", 40, 77, message_size_limit=100)
    [(wire, end)] = messages(driver)
    assert end == DataEnd(length, error)
    if error:
        assert len(wire) <= 100
        assert driver.written.endswith(error.to_bytes() + R.R250_OK.to_bytes())
    else:
        assert wire == body


def test_size_limit_stops_chunks_but_finds_the_end():
    driver = transfer(b"y" * 5000 + b"\r\n" + b"z\r\n" * 1000 + b".\r\nNOOP\r\n",
                      *range(100, 8000, 700), message_size_limit=1000, line_length_limit=512)
    [(wire, end)] = messages(driver)
    assert end.error == R.R552_MESSAGE_TOO_BIG and end.size == 5002 + 3000
    assert len(wire) <= 1000
    assert driver.events[-1] == Noop()


def test_long_lines_are_split_and_the_buffer_stays_bounded():
    driver = Driver(line_length_limit=1000)
    driver.feed(ENVELOPE)
    line = bytes(random.Random(1).choice(b"abc.\r") for _ in range(200_000))
    for start in range(0, len(line), 4096):
        driver.feed(line[start:start + 4096])
        assert driver.session.buffered <= 1001
    driver.feed(b"\r\n.\r\n")
    [(wire, end)] = messages(driver)
    assert wire == line.replace(b"\r", b" ") + b"\r\n"
    assert_wire_form(wire)


KNOWN_EVENTS = (Helo, Mail, Rcpt, Data, DataChunk, DataEnd, Rset, Noop, Quit, Vrfy, Expn, Help,
                StartTLS, Auth, AuthResponse, BadCommand, ConnectionClosed)
ALPHABET = [b"\r", b"\n", b".", b"\0", b"a", b" ", b"\xff", b"\r\n", b"\r\n.", b"\r\n.\r\n",
            b"DATA\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", b"<", b">", b":"]


def test_fuzz_random_bytes_and_chunking():
    rng = random.Random(5321)
    for case in range(2000):
        mode = MODES[case % 3]
        content = b"".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 40)))
        data = (ENVELOPE if case % 2 else b"") + content + b"\r\n.\r\n"
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(4))))
        cuts = [0, *cuts, len(data)]
        driver = Driver(bare_newline=mode, line_length_limit=30)
        driver.feed(*(data[a:b] for a, b in zip(cuts, cuts[1:])), b"")  # ProtocolError is caught
        assert all(isinstance(e, KNOWN_EVENTS) for e in driver.events), data
        for wire, end in messages(driver):
            if end.error is None:
                assert_wire_form(wire)

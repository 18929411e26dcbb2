"""Command line limits, bare newlines in commands, and the core's purity."""
import ast
import pathlib
import subprocess
import sys

import pytest

from relayd.smtp import replies as R
from relayd.smtp.events import BadCommand, ConnectionClosed, Helo, Noop
from relayd.smtp.server import ServerSession, State
from tests.smtp.test_server_transcripts import HOST, Driver

CORE = ["relayd.smtp.grammar", "relayd.smtp.events", "relayd.smtp.server", "relayd.smtp.data"]
FORBIDDEN = {"socket", "ssl", "gevent", "time", "threading", "select", "asyncio"}


def test_command_at_the_limit_is_accepted_one_over_is_refused():
    driver = Driver(line_length_limit=20)
    driver.feed(b"HELO " + b"h" * 15 + b"\r\n", b"HELO " + b"h" * 16 + b"\r\nNOOP\r\n")
    assert driver.events == [Helo("h" * 15, False),
                             BadCommand(R.R500_COMMAND_TOO_LONG.format(HOST)), Noop()]
    assert R.R500_COMMAND_TOO_LONG.format(HOST).to_bytes() == (
        b"500 5.5.2 mx.example.net Error: command too long\r\n")


def test_endless_line_keeps_the_buffer_bounded_and_is_answered_once():
    driver = Driver(line_length_limit=100)
    for _ in range(1000):
        driver.feed(b"X" * 997)
        assert driver.session.buffered <= 101
    driver.feed(b"tail\r\nNOOP\r\n")
    assert driver.events == [BadCommand(R.R500_COMMAND_TOO_LONG.format(HOST)), Noop()]


@pytest.mark.parametrize("mode", ["normalize", "no"])
def test_lf_terminated_commands_are_accepted(mode):
    driver = Driver(bare_newline=mode).feed(b"HELO x\nNOOP\n")
    assert driver.events == [Helo("x", False), Noop()]


def test_lf_terminated_command_in_reject_mode_ends_the_session():
    driver = Driver(bare_newline="reject").feed(b"HELO x\r\nNOOP\nNOOP\r\n")
    assert driver.events == [Helo("x", False)]
    assert driver.written.endswith(b"550 5.5.2 mx.example.net Error: bare <LF> received\r\n")
    assert driver.session.state is State.CLOSED
    assert driver.session.next_event() == ConnectionClosed()


def test_unknown_bare_newline_mode_is_a_configuration_error():
    with pytest.raises(ValueError):
        ServerSession(hostname=HOST, bare_newline="maybe")


def test_core_modules_import_no_io_or_clock():
    # The interpreter itself may load "time" at start-up: look at what the import adds.
    code = ("import sys; before = set(sys.modules); import " + ", ".join(CORE) + "; "
            "print(' '.join(sorted(m for m in " + repr(sorted(FORBIDDEN))
            + " if m in sys.modules and m not in before)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=pathlib.Path(__file__).parents[2])
    assert result.stdout.strip() == ""


def test_core_sources_name_no_io_or_clock_module():
    root = pathlib.Path(__file__).parents[2]
    for module in CORE:
        tree = ast.parse((root / (module.replace(".", "/") + ".py")).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {name.split(".")[0] for name in names} & FORBIDDEN, (module, names)

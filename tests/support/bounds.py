"""A hang guard for tests of work that must stay linear in its input.

``with hang_guard():`` turns a call that would run for minutes (a regex
backtracking over client data) into a test failure. It bounds the test, it
does not time it: the bound is far above what the work takes when it is
linear, so a loaded machine cannot make it fail. Python's re and the regex
module both check for signals while they match, so SIGALRM interrupts them.
"""
from __future__ import annotations

import contextlib
import signal
import threading

BOUND = 20   # seconds; linear work in these tests takes milliseconds


@contextlib.contextmanager
def hang_guard(seconds: int = BOUND):
    """Fail with TimeoutError if the block runs longer than *seconds* (main thread only)."""
    assert threading.current_thread() is threading.main_thread()

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: not linear in its input")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

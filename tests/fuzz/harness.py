"""What the fuzz harnesses share: their hypothesis settings and input strategies.

In the test suite every harness runs a fixed, derandomized set of examples
(the same inputs on every run and every machine), so the suite stays
bounded and repeatable. tools/fuzz runs the very same test functions with
random seeds and large example counts: it sets RELAYD_FUZZ_EXAMPLES (examples
per call), RELAYD_FUZZ_RANDOM=1 and RELAYD_FUZZ_DB (a directory where failing
examples are kept, to replay and shrink them) before importing the harnesses.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis import strategies as st

_EXAMPLES = os.environ.get("RELAYD_FUZZ_EXAMPLES")
_RANDOM = os.environ.get("RELAYD_FUZZ_RANDOM") == "1"
_DB = os.environ.get("RELAYD_FUZZ_DB")


def fuzz_settings(examples: int) -> settings:
    """Settings for one harness: ``examples`` per suite run, derandomized,
    no deadline (the machine is shared), no example database in the suite."""
    return settings(
        max_examples=int(_EXAMPLES) if _EXAMPLES else examples,
        derandomize=not _RANDOM,
        database=DirectoryBasedExampleDatabase(_DB) if _DB else None,
        deadline=None,
        print_blob=True,
        # No "explain" phase: it costs seconds per failure and the suite has xfails.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much, HealthCheck.large_base_example])


@st.composite
def split(draw, data: bytes, max_cuts: int = 8) -> list[bytes]:
    """``data`` cut into pieces at random offsets (the bytes of one TCP read each)."""
    if len(data) < 2:
        return [data] if data else []
    cuts = draw(st.lists(st.integers(1, len(data) - 1), max_size=max_cuts, unique=True))
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def stream_of(tokens: st.SearchStrategy[bytes], max_tokens: int = 40) -> st.SearchStrategy[bytes]:
    """Byte strings made of ``tokens``."""
    return st.lists(tokens, max_size=max_tokens).map(b"".join)


def long_runs(alphabet: bytes = b"a.\r\n ", max_len: int = 5000) -> st.SearchStrategy[bytes]:
    """One byte repeated many times: long lines, long runs of dots or line ends."""
    return st.builds(lambda byte, n: bytes([byte]) * n, st.sampled_from(alphabet),
                     st.integers(1, max_len))


# Bytes that matter to an SMTP server reading commands and DATA: line ends in
# every form, the end-of-data marker and its near misses, NUL, 8-bit bytes.
LINE_TOKENS = [b"\r", b"\n", b"\r\n", b".", b"..", b"\r\n.", b"\r\n.\r\n", b".\r\n",
               b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\0", b" ", b"\t", b"a", b"xyz",
               b"\xff", b"\xc3\xa9", b"\xe2\x80\xa8", b"\xc2\x85", b":", b"<", b">", b"@",
               b"--", b"="]

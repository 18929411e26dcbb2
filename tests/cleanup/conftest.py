"""Helpers for the content-check tests: real main.cf text, real table files."""
import pytest

from relayd.cleanup import ContentChecks, LogContext
from relayd.config import load_config

CONTEXT = LogContext(queue_id="4F3A21C0B2", origin="client.example[192.0.2.7]",
                     sender="alice@example.org", recipient="bob@example.net",
                     protocol="ESMTP", helo="client.example")


def run(checker, data: bytes, step: int | None = None):
    """Feed *data* whole or *step* bytes at a time; (stored bytes, result)."""
    step = step or len(data) or 1
    out = [checker.feed(data[i:i + step]) for i in range(0, len(data), step)]
    rest, result = checker.finish()
    return b"".join(out) + rest, result


@pytest.fixture
def make_checks(tmp_path):
    """``make_checks(main_cf_text, **files)``: write each file (name -> text) to
    tmp_path, replace "{dir}" in the main.cf text, and read the checks."""
    def make(main_cf: str, opener=None, **files):
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        config = load_config(main_cf=main_cf.replace("{dir}", str(tmp_path)))
        if opener is None:
            return ContentChecks.from_config(config)
        return ContentChecks.from_config(config, opener)
    return make

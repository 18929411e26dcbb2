"""Helpers for the configuration tests: write a config directory, load it."""
import pytest


@pytest.fixture
def confdir(tmp_path):
    """Write main.cf / master.cf texts into a fresh directory; return its path."""
    def write(main_cf=None, master_cf=None):
        if main_cf is not None:
            (tmp_path / "main.cf").write_text(main_cf)
        if master_cf is not None:
            (tmp_path / "master.cf").write_text(master_cf)
        return str(tmp_path)
    return write

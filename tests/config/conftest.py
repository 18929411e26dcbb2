"""Helpers for the configuration tests: write a config directory, load it."""
import pathlib

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


@pytest.fixture
def debian_main_cf(tmp_path):
    """Debian's stock main.cf, its ``myorigin = /etc/mailname`` pointing at a
    mailname file under tmp_path (the test host may have no /etc/mailname)."""
    (tmp_path / "mailname").write_text("mx.example.org\n")
    text = (pathlib.Path(__file__).parent / "data" / "debian-main.cf").read_text()
    return text.replace("myorigin = /etc/mailname", f"myorigin = {tmp_path}/mailname")

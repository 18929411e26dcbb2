"""Plugins as an operator installs them: the example plugin with pip, test plugins
as distributions on PYTHONPATH, both found through the relayd.plugins entry points."""
import os
import subprocess
import sys
import textwrap
from importlib import invalidate_caches
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from relayd.pipeline.hooks import HookRegistry
from relayd.pipeline.registry import ENTRY_POINT_GROUP, CheckRegistry

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "plugins" / "relayd-plugin-example"
EXAMPLE_ENTRY_POINT = "relayd_plugin_example:register"


def _installed() -> bool:
    return any(ep.value == EXAMPLE_ENTRY_POINT for ep in entry_points(group=ENTRY_POINT_GROUP))


@pytest.fixture(scope="session")
def example_plugin():
    """relayd-plugin-example, pip-installed (editable) into this environment if it is not."""
    if not issubclass(CheckRegistry, HookRegistry):
        # Installed, its register() would break every relayd started here.
        pytest.fail("CheckRegistry does not offer add_hook yet (it must derive from "
                    "relayd.pipeline.hooks.HookRegistry): not installing the example plugin")
    if not _installed():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(EXAMPLE_DIR)],
                       check=True)
        # The editable install's .pth hook only runs at interpreter start: make the
        # package importable in this process too.
        sys.path.insert(0, str(EXAMPLE_DIR))
        invalidate_caches()
    assert _installed()
    import relayd_plugin_example
    return relayd_plugin_example


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """``plugin_site(name, source)`` writes a plugin distribution (a module whose
    ``register`` is its relayd.plugins entry point) into a directory that relayd
    processes started afterwards find on their PYTHONPATH."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))

    def make(name: str, source: str) -> Path:
        (site / f"{name}.py").write_text(textwrap.dedent(source))
        info = site / f"{name}-0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n")
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {name}:register\n")
        return site

    return make

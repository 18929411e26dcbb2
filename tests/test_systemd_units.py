"""The systemd unit files: the service is hardened to an exposure of 2.0 or better."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_service_exposure_is_2_or_better(tmp_path):
    unit = tmp_path / "relayd.service"   # --offline reads the unit by its file name
    shutil.copy(SYSTEMD / "relayd.service", unit)
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                          capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for relayd.service: ([0-9.]+)", done.stdout)
    assert score, done.stdout + done.stderr
    assert float(score.group(1)) <= 2.0


def test_units_agree_on_the_user_and_the_queue():
    service = (SYSTEMD / "relayd.service").read_text()
    assert "Type=notify" in service and "User=relayd" in service
    assert "ReadWritePaths=/var/spool/relayd" in service
    assert re.search(r"^u relayd ", (SYSTEMD / "relayd.sysusers").read_text(), re.M)
    tmpfiles = {tuple(line.split()[1:5]) for line in
                (SYSTEMD / "relayd.tmpfiles").read_text().splitlines() if line.startswith("d ")}
    # The queue traversable, never listable; sendmail's doors as pickup makes them.
    assert {("/var/spool/relayd", "0711", "relayd", "relayd"),
            ("/var/spool/relayd/maildrop", "1733", "relayd", "relayd"),
            ("/var/spool/relayd/public", "0755", "relayd", "relayd")} <= tmpfiles
    socket = (SYSTEMD / "relayd.socket").read_text()
    assert [f"ListenStream={p}" in socket for p in (25, 465, 587)] == [True] * 3

"""docs/grafana-relayd.json: every query names metrics relayd exports, with
their labels, and is valid PromQL (promtool check rules, with Grafana's
variables filled in as Grafana would)."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from relayd.metrics.catalogue import HISTOGRAM, METRICS, COUNTER

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-relayd.json"


def queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", ())]


def exported_names() -> dict[str, tuple[str, ...]]:
    """Every sample name relayd exports, with the labels it may carry."""
    names = {}
    for m in METRICS.values():
        if m.kind == COUNTER:
            names[m.full_name + "_total"] = m.labels
        elif m.kind == HISTOGRAM:
            names[m.full_name + "_bucket"] = m.labels + ("le",)
            names[m.full_name + "_sum"] = names[m.full_name + "_count"] = m.labels
        else:
            names[m.full_name] = m.labels
    return names


def test_every_query_names_exported_metrics_and_labels():
    names = exported_names()
    assert len(queries()) >= 30
    for expr in queries():
        used = re.findall(r"\brelayd_\w+", expr)
        assert used, expr
        for name in used:
            assert name in names, f"{name} in {expr}"
        for group in re.findall(r"by \(([^)]*)\)", expr):
            for label in map(str.strip, group.split(",")):
                assert any(label in names[n] for n in used), f"label {label} in {expr}"


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (tools/setup-env installs prometheus)")
def test_every_query_is_valid_promql(tmp_path):
    rules = ["groups:", "- name: relayd-dashboard", "  rules:"]
    for n, expr in enumerate(queries()):
        filled = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
        rules += [f"  - record: relayd:dashboard_query_{n}", f"    expr: {json.dumps(filled)}"]
    path = tmp_path / "rules.yml"
    path.write_text("\n".join(rules) + "\n")
    checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr

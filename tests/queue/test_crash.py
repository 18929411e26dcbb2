"""A real kill -9 at random moments never loses a message whose commit() returned."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

from tests.queue.crash_writer import content_for
from tests.queue.helpers import opened

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_and_kill(queue_dir, lines_before_kill: int) -> dict[str, int]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.queue.crash_writer", str(queue_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        acknowledged = {}
        while len(acknowledged) < lines_before_kill:
            qid, n = proc.stdout.readline().split()
            acknowledged[qid] = int(n)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    return acknowledged


def test_every_acknowledged_message_survives_kill_9(tmp_path):
    rng = random.Random(os.getpid())
    acknowledged: dict[str, int] = {}
    for _ in range(4):
        acknowledged.update(_run_and_kill(tmp_path, rng.randint(5, 60)))

    store = opened(tmp_path)
    queued = {m.queue_id: m for m in store.messages()}
    assert set(acknowledged) <= set(queued)
    for qid, n in acknowledged.items():
        assert store.read_content(qid) == content_for(n)[1]
    referenced = {q for q in queued if os.path.exists(tmp_path / "data" / q)}
    assert set(os.listdir(tmp_path / "data")) == referenced   # no orphan data files left
    store.close()

"""The queue directory lock: exclusive, names its holder, dies with it."""
import os
import signal
import subprocess
import sys

import pytest

from relayd.queue.lock import DirectoryLock, QueueLocked
from tests.queue.helpers import opened

HOLDER = """
import sys, time
from relayd.queue.lock import DirectoryLock
DirectoryLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_store_refuses_a_directory_another_process_holds_until_that_process_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(QueueLocked) as refused:
            opened(tmp_path)
        assert refused.value.pid == holder.pid
        assert f"locked by process {holder.pid}" in str(refused.value)
        assert not (tmp_path / "journal").exists()   # refused before any recovery
    finally:
        os.kill(holder.pid, signal.SIGKILL)    # however it dies, the kernel drops its lock
        holder.wait()
    store = opened(tmp_path)                   # the stale lock file does not block
    assert (tmp_path / "queue.lock").read_text().strip() == str(os.getpid())
    store.close()


def test_close_gives_the_lock_up_and_a_second_store_in_the_same_process_is_refused(tmp_path):
    store = opened(tmp_path)
    with pytest.raises(QueueLocked):
        opened(tmp_path)
    store.close()
    again = DirectoryLock(str(tmp_path))
    again.acquire()
    assert again.held
    again.release()
    assert not again.held

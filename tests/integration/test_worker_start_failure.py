"""A queue_directory too long for the UNIX sockets the workers bind under it
stops the start before any fork, as a configuration error (exit 78), instead
of workers that die and restart forever (a worker that fails at startup says
why: tests/integration/test_daemon.py)."""
import os
import pwd
import subprocess
import sys

from relayd.config import EX_CONFIG


def test_a_queue_directory_too_long_for_its_sockets_is_a_configuration_error(tmp_path):
    queue = tmp_path / ("q" * max(1, 100 - len(str(tmp_path))))
    (tmp_path / "main.cf").write_text(f"queue_directory = {queue}\nrelayd_worker_processes = 2\n"
                                      "alias_maps =\n"
                                      f"mail_owner = {pwd.getpwuid(os.geteuid()).pw_name}\n")
    (tmp_path / "master.cf").write_text("127.0.0.1:1 inet n - n - - smtpd\n")
    socket = f"{queue}/worker-1/public/relayd.ctl"
    expected = (f"relayd: fatal: parameter queue_directory: {queue}: too long for the UNIX "
                f"sockets under it ({socket} is {len(socket)} bytes, at most 108 fit a socket "
                "address): use a shorter path\n")
    for argv in (["config", "check"], ["-o", f"maillog_file={tmp_path}/maillog"]):
        result = subprocess.run([sys.executable, "-m", "relayd", "-c", str(tmp_path), *argv],
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stderr) == (EX_CONFIG, expected)
    assert not queue.exists()   # stopped before the queue was made, and before any fork

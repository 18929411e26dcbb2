"""A real Dovecot (Debian's dovecot-core) as the peer of the dovecot SASL back end.

:class:`Dovecot` writes a minimal dovecot.conf in a directory of its own: no
mail protocols, only the auth service with a UNIX socket (where the test
says, e.g. in a relayd queue directory as ``private/auth``) and an inet
listener on 127.0.0.1 (and the auth-master socket, the wrong one for smtpd), a passwd-file passdb with SHA512-CRYPT hashes made by
mkpasswd, base_dir/state_dir/logs in the directory. It runs in the
foreground (``dovecot -F``) as the current user, so no root is needed.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.relayd_proc import free_port, live_members

CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = none
ssl = no
auth_verbose = yes
auth_failure_delay = 0
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}
}}
service auth {{
  unix_listener {socket} {{
    mode = 0660
  }}
  unix_listener {dir}/auth-master {{
    mode = 0600
  }}
  inet_listener {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


def dovecot_binary() -> str | None:
    return shutil.which("dovecot", path=os.environ.get("PATH", "") + ":/usr/sbin")


class Dovecot:
    """``Dovecot(directory, socket_path, users={"alice": "$6$..."})``; start() / stop()."""

    def __init__(self, directory: Path, socket_path: Path, users: dict[str, str]):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path = Path(socket_path)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (self.directory / "users").write_text(
            "".join(f"{user}:{hashed}\n" for user, hashed in users.items()))
        me = pwd.getpwuid(os.getuid())
        self.conf = self.directory / "dovecot.conf"
        self.conf.write_text(CONF.format(
            dir=self.directory, socket=self.socket_path, port=self.port, user=me.pw_name,
            group=grp.getgrgid(os.getgid()).gr_name, uid=os.getuid(), gid=os.getgid()))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "Dovecot":
        # A process group of its own: stop() ends the master and its children at once.
        self.proc = subprocess.Popen([dovecot_binary(), "-F", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        """Both listeners take connections (the auth service is up)."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(self.socket_path))
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Kill Dovecot's processes (a clean SIGTERM shutdown takes it ~6 s); its
        socket file stays behind, as after a crash, and refuses connections."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            deadline = time.monotonic() + 10
            while live_members(self.proc.pid):
                assert time.monotonic() < deadline, "dovecot processes survive"
                time.sleep(0.02)

    def log(self) -> str:
        try:
            return (self.directory / "dovecot.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert time.monotonic() < deadline, f"{text!r} not in dovecot.log:\n{self.log()}"
            time.sleep(0.05)
        return self.log()

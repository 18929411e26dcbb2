"""A private instance of Debian's Postfix (root only), for comparing output formats.

It listens on a free loopback port, relays to ``relayhost`` and keeps its
queue, configuration and log under a fresh directory outside pytest's
root-only temporary tree (Postfix's daemons run as the postfix user).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.relayd_proc import free_port

SBIN = "/usr/sbin"
POSTFIX = shutil.which("postfix") or shutil.which("postfix", path=SBIN)

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {run}/etc
queue_directory = {run}/spool
data_directory = {run}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {run}/maillog
maillog_file_prefixes = {run}
syslog_name = postfix-relaydtest
myhostname = postfix.test
mydomain = test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
local_transport = error:local delivery is disabled
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relay_domains = relay.example
relayhost = [127.0.0.1]:{relay_port}
smtp_dns_support_level = disabled
minimal_backoff_time = 300s
maximal_backoff_time = 600s
biff = no
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PrivatePostfix:
    """``start()``, ``command(name, *args)`` (postqueue, postsuper ... with -c), ``stop()``;
    ``extra_main_cf`` lines are added to its main.cf."""

    def __init__(self, relay_port: int, extra_main_cf: str = ""):
        self.run = Path(tempfile.mkdtemp(prefix="relayd-postfix-"))
        self.run.chmod(0o755)
        self.etc = self.run / "etc"
        self.port = free_port()
        self.log_path = self.run / "maillog"
        for sub in ("etc", "spool", "data"):
            (self.run / sub).mkdir()
        shutil.chown(self.run / "data", "postfix")
        (self.etc / "main.cf").write_text(MAIN_CF.format(run=self.run, relay_port=relay_port)
                                          + extra_main_cf)
        (self.etc / "master.cf").write_text(MASTER_CF.format(port=self.port))

    def start(self) -> "PrivatePostfix":
        subprocess.run([POSTFIX, "-c", str(self.etc), "start"], check=True, capture_output=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, "Postfix did not start listening"
                time.sleep(0.1)

    def command(self, name: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([os.path.join(SBIN, name), "-c", str(self.etc), *args],
                              input=stdin, capture_output=True, text=True, timeout=30)

    def wait_log(self, text: str, count: int = 1, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            if log.count(text) >= count:
                return log
            assert time.monotonic() < deadline, f"{text!r} x{count} not in Postfix's log:\n{log}"
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.etc), "stop"], capture_output=True)
        shutil.rmtree(self.run, ignore_errors=True)


def available() -> str:
    """Why a private Postfix cannot run here ("" when it can)."""
    if POSTFIX is None:
        return "Postfix not installed (tools/setup-env installs it)"
    if os.geteuid() != 0:
        return "starting a Postfix instance takes root"
    return ""

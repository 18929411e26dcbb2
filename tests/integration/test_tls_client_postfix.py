"""A chain with Debian's Postfix: client -> relayd -> Postfix (which demands
STARTTLS: smtpd_tls_security_level = encrypt, the test server certificate)
-> the recording sink. relayd must deliver over TLS at level secure."""
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.relayd_proc import free_port

POSTFIX = shutil.which("postfix") or shutil.which("postfix", path="/usr/sbin")

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
relayhost = [127.0.0.1]:{sink_port}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = encrypt
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
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


@pytest.fixture
def postfix(sink, tls_certs):
    """A private Postfix instance on a free loopback port (its queue outside
    pytest's root-only temporary directory: Postfix's daemons run as postfix)."""
    if POSTFIX is None:
        pytest.skip("Postfix not installed (tools/setup-env installs it)")
    if os.geteuid() != 0:
        pytest.skip("starting a Postfix instance takes root")
    run = Path(tempfile.mkdtemp(prefix="relayd-postfix-"))
    run.chmod(0o755)
    for sub in ("etc", "spool", "data"):
        (run / sub).mkdir()
    shutil.chown(run / "data", "postfix")
    port = free_port()
    (run / "etc" / "main.cf").write_text(MAIN_CF.format(
        run=run, sink_port=sink.port, cert=tls_certs.cert("server"), key=tls_certs.key("server")))
    (run / "etc" / "master.cf").write_text(MASTER_CF.format(port=port))
    subprocess.run([POSTFIX, "-c", str(run / "etc"), "start"], check=True, capture_output=True)
    try:
        _wait_listening(port)
        yield port, run / "maillog"
    finally:
        subprocess.run([POSTFIX, "-c", str(run / "etc"), "stop"], capture_output=True)
        shutil.rmtree(run, ignore_errors=True)


def _wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_text(path: Path, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{text!r} not in {path}"
        time.sleep(0.1)


def test_relayd_delivers_to_postfix_that_demands_starttls(relayd_factory, postfix, sink, tls_certs):
    port, maillog = postfix
    relayd = relayd_factory(f"relayhost = [localhost]:{port}\n"
                            "smtp_tls_security_level = secure\n"
                            f"smtp_tls_CAfile = {tls_certs.cert('ca')}\n"
                            "smtp_tls_loglevel = 1\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
        smtp.sendmail("alice@relayd.test", ["bob@example.net"], b"Subject: chain\r\n\r\nhello\r\n")
    [txn] = sink.wait_for(1, timeout=30)
    assert txn.recipients == ["bob@example.net"] and b"hello" in txn.data
    relayd.wait_log(f"Verified TLS connection established to localhost[127.0.0.1]:{port}: TLSv1.3")
    _wait_text(maillog, "Anonymous TLS connection established from localhost[127.0.0.1]")

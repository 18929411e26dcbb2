"""docs/operations.md, "Migration from Postfix": the configuration step (1) and
the check for ignored parameters (2), run as the page writes them (with /etc/
moved under a temporary directory), on Debian's stock main.cf and master.cf
with tables compiled by Debian's Postfix. relayd refuses Postfix's compiled
tables, starts on the ones the commands build in its own directory, and
Postfix's files stay usable by Postfix."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from relayd.config import load_config
from tests.integration.test_postfix_admin_config import rcpt_line
from tests.support.relayd_proc import RelaydProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
DATA = Path(__file__).resolve().parents[1] / "config" / "data"
POSTMAP, POSTALIAS = "/usr/sbin/postmap", "/usr/sbin/postalias"

pytestmark = pytest.mark.skipif(not os.path.exists(POSTMAP),
                                reason="Debian's postfix is not installed")

EXTRA_MAIN_CF = """\
smtpd_recipient_restrictions = check_recipient_access hash:/etc/postfix/access,
    reject_unauth_destination
smtp_sasl_password_maps = hash:${config_directory}/sasl_passwd
smtpd_milters = inet:127.0.0.1:8891
"""


def doc_block(heading: str) -> str:
    """The first code block after ``heading`` in the migration section."""
    section = DOC.read_text().split("## Migration from Postfix\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```\n(.*?)```", section.split(heading, 1)[1], re.S)[0]


def run_doc(heading: str, root: Path) -> subprocess.CompletedProcess:
    script = doc_block(heading).replace("/etc/", f"{root}/etc/")
    # relayd's console scripts (relayd-postconf, relayd-postmap...) and its Python.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.fixture
def host(tmp_path, sink):
    """A Debian host's /etc (under tmp_path/host) as Postfix left it."""
    root = tmp_path / "host"
    etc = root / "etc"
    (etc / "postfix").mkdir(parents=True)
    # relayd's directory (the Install steps make it); step 1 replaces the files written here.
    proc = RelaydProcess(etc / "relayd", sink.port)
    main_cf = "".join(line for line in (DATA / "debian-main.cf").read_text().splitlines(True)
                      if not line.startswith(("smtpd_tls_cert_file", "smtpd_tls_key_file")))
    (etc / "postfix" / "main.cf").write_text(
        (main_cf + EXTRA_MAIN_CF).replace("/etc/mailname", f"{root}/etc/mailname")
        .replace("/etc/postfix/", f"{root}/etc/postfix/"))
    master_cf = (DATA / "debian-master.cf").read_text().replace(
        "smtp      inet  n", f"127.0.0.1:{proc.port} inet n", 1)
    (etc / "postfix" / "master.cf").write_text(master_cf)
    (etc / "postfix" / "access").write_text("blocked@example.org REJECT\n")
    (etc / "postfix" / "sasl_passwd").write_text("[smtp.example.net]:587 user:secret\n")
    (etc / "aliases").write_text("root: admin@example.net\npostmaster: root\n")
    (etc / "mailname").write_text("mx.example.org\n")
    # Postfix's tools with a main.cf they accept (Debian's names /etc/mailname).
    postfix_cf = tmp_path / "postfix-tools"
    postfix_cf.mkdir()
    (postfix_cf / "main.cf").write_text("myorigin = mx.example.org\n")
    for tool, table in [(POSTMAP, etc / "postfix" / "access"),
                        (POSTMAP, etc / "postfix" / "sasl_passwd"),
                        (POSTALIAS, etc / "aliases")]:
        subprocess.run([tool, "-c", str(postfix_cf), str(table)], check=True, timeout=30)
    yield root, proc, postfix_cf
    proc.stop()


def test_relayd_refuses_the_tables_postfix_compiled(host, tmp_path):
    root, proc, _ = host
    out = subprocess.run([sys.executable, "-m", "relayd", "-c", str(root / "etc" / "postfix"),
                          "-o", f"queue_directory={tmp_path / 'queue'}",
                          "-o", f"mail_owner={proc.mail_owner}", "-o", "maillog_file=/dev/stderr"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 78, out.stderr
    assert "is not a relayd table (built by Postfix's postmap?)" in out.stderr


@pytest.fixture
def queue_directory():
    # Short: its sockets (worker-N/public/relayd.ctl) must fit a UNIX socket path.
    directory = tempfile.mkdtemp(prefix="relayd-mig-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_the_configuration_step_as_written(host, sink, queue_directory):
    root, proc, postfix_cf = host
    step1 = run_doc("**1. Configure**", root)
    assert step1.returncode == 0, step1.stderr
    with open(proc.directory / "main.cf", "a") as f:   # the test's queue and smart host
        f.write(f"queue_directory = {queue_directory}\nrelayhost = [127.0.0.1]:{sink.port}\n"
                "smtpd_peername_lookup = no\n")
    # Debian's myorigin = /etc/mailname: the domain is the file's first line.
    assert load_config(str(proc.directory))["myorigin"] == "mx.example.org"
    proc.start()
    assert rcpt_line(proc.port, "a@example.org", "blocked@example.org") == (
        b"554 5.7.1 <blocked@example.org>: Recipient address rejected: Access denied")
    relayd_bin = Path(sys.executable).parent
    for args, expected in [(["relayd-postalias", "-q", "root"], "admin@example.net\n"),
                           (["relayd-postmap", "-q", "[smtp.example.net]:587"], "user:secret\n")]:
        table = "aliases" if args[0] == "relayd-postalias" else "sasl_passwd"
        got = subprocess.run([str(relayd_bin / args[0]), *args[1:],
                              f"hash:{proc.directory / table}"], capture_output=True, text=True)
        assert got.stdout == expected, got.stderr
    # Postfix's compiled tables are still Postfix's.
    etc = root / "etc"
    for tool, key, table, expected in [(POSTMAP, "blocked@example.org", etc / "postfix" / "access",
                                        "REJECT\n"),
                                       (POSTALIAS, "root", etc / "aliases", "admin@example.net\n")]:
        got = subprocess.run([tool, "-c", str(postfix_cf), "-q", key, f"hash:{table}"],
                             capture_output=True, text=True, timeout=30)
        assert got.stdout == expected, got.stderr
    # Step 2: the parameters main.cf sets that relayd ignores.
    ignored = run_doc("**2. Check**", root)
    assert ignored.returncode == 0, ignored.stderr
    assert "smtpd_milters" in ignored.stdout.split()
    assert "myorigin" not in ignored.stdout.split()

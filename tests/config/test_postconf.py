"""relayd's postconf against Debian's: the same files, the same output and edits."""
import os
import shutil
import subprocess
import sys

import pytest

from relayd.cli.postconf import apply_edits

POSTFIX_POSTCONF = shutil.which("postconf", path="/usr/sbin")
OURS = os.path.join(os.path.dirname(sys.executable), "postconf")

MAIN_CF = """\
# A main.cf as an admin keeps it.
myhostname = mx.example.org

# Relaying
relayhost = [smarthost.example.org]:587
mynetworks = 127.0.0.0/8,
    192.0.2.0/24
smtpd_banner = $myhostname ESMTP ($mydomain)
message_size_limit = 20480000
"""

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       y       -       -       smtpd
  -o smtpd_tls_security_level=may
  -o syslog_name=postfix/smtp
127.0.0.1:10025 inet n - n - 10 smtpd
submission inet n       -       y       -       -       smtpd -o smtpd_sasl_auth_enable=yes
relay     unix  -       -       n       -       -       smtp
"""

pytestmark = pytest.mark.skipif(POSTFIX_POSTCONF is None, reason="Postfix not installed")


@pytest.fixture
def config_dirs(tmp_path):
    """Two copies of one configuration: Postfix's postconf edits one, ours the other."""
    dirs = []
    for name in ("postfix", "relayd"):
        d = tmp_path / name
        d.mkdir()
        (d / "main.cf").write_text(MAIN_CF)
        (d / "master.cf").write_text(MASTER_CF)
        dirs.append(d)
    return dirs


def both(config_dirs, *args):
    theirs, ours = (subprocess.run([prog, "-c", str(d), *args], capture_output=True, text=True,
                                   timeout=30)
                    for prog, d in zip((POSTFIX_POSTCONF, OURS), config_dirs))
    return theirs, ours


@pytest.mark.parametrize("args", [
    ["-n"], ["-h", "relayhost"], ["-x", "-h", "smtpd_banner"], ["mynetworks", "relayhost"],
    ["-M"], ["-M", "smtp/inet"], ["-M", "relay"], ["-P"], ["-P", "smtp/inet/syslog_name"],
])
def test_output_matches_postfix(config_dirs, args):
    theirs, ours = both(config_dirs, *args)
    assert theirs.returncode == ours.returncode == 0, (theirs.stderr, ours.stderr)
    expected = theirs.stdout.replace(str(config_dirs[0]), str(config_dirs[1]))
    assert ours.stdout == expected


@pytest.mark.parametrize("args", [
    ["-e", "relayhost = [other.example]:25", "mynetworks=127.0.0.0/8", "new_parameter = 1"],
    ["-#", "myhostname", "mynetworks"],
    ["-X", "relayhost", "mynetworks"],
])
def test_edits_match_postfix(config_dirs, args):
    theirs, ours = both(config_dirs, *args)
    assert theirs.returncode == ours.returncode == 0, (theirs.stderr, ours.stderr)
    assert (config_dirs[1] / "main.cf").read_text() == (config_dirs[0] / "main.cf").read_text()
    assert "# Relaying" in (config_dirs[1] / "main.cf").read_text()


def test_edit_is_atomic_and_keeps_the_mode(config_dirs):
    path = config_dirs[1] / "main.cf"
    path.chmod(0o640)
    before = os.stat(path).st_ino
    subprocess.run([OURS, "-c", str(config_dirs[1]), "-e", "relayhost ="], check=True)
    assert os.stat(path).st_ino != before and (os.stat(path).st_mode & 0o777) == 0o640
    assert sorted(p.name for p in config_dirs[1].iterdir()) == ["main.cf", "master.cf"]


def test_apply_edits():
    lines = ["a = 1", "b = 2", "  continued", "# c = 3", "a = again"]
    assert apply_edits(lines, "-e", {"a": "x", "c": "4"}) == [
        "a = x", "b = 2", "  continued", "# c = 3", "c = 4"]
    assert apply_edits(lines, "-#", {"b": None}) == ["a = 1", "#b = 2", "#  continued",
                                                     "# c = 3", "a = again"]


MASTER_EDITS = [
    ["-P", "-e", "smtp/inet/syslog_name=postfix/y", "submission/inet/new_p=1"],
    ["-M", "-e", "relay2/unix = relay2 unix - - n - - smtp",
     "127.0.0.1:10025/inet = 127.0.0.1:10025 inet n - n - 20 smtpd"],
    ["-PX", "smtp/inet/smtpd_tls_security_level"],
    ["-M#", "relay/unix"],
    ["-MX", "submission/inet"],
]


def test_master_cf_edits_match_postfix(config_dirs):
    for d in config_dirs:   # comments and a blank line where Postfix keeps them
        (d / "master.cf").write_text(MASTER_CF.replace("127.0.0.1:10025", "# local\n127.0.0.1:10025")
                                     .replace("relay ", "\nrelay ", 1))
    for args in MASTER_EDITS:
        theirs, ours = both(config_dirs, *args)
        assert theirs.returncode == ours.returncode == 0, (args, theirs.stderr, ours.stderr)
        assert (config_dirs[1] / "master.cf").read_text() == \
            (config_dirs[0] / "master.cf").read_text(), args


def test_a_master_cf_relayd_would_refuse_is_not_written(config_dirs):
    before = (config_dirs[1] / "master.cf").read_text()
    result = subprocess.run([OURS, "-c", str(config_dirs[1]), "-Me",
                             "bad/inet = bad inet n - n - - nosuchdaemon"], capture_output=True,
                            text=True)
    assert result.returncode == 78 and "postconf: fatal:" in result.stderr
    assert (config_dirs[1] / "master.cf").read_text() == before

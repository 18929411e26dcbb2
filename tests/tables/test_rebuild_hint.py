"""The command a missing or foreign FILE.db error tells the admin to run: an
aliases(5) source (a table alias_maps or alias_database names) is built by
relayd-postalias (its keys end without ":" and its values are lists), any
other hash: table by relayd-postmap. Shown by ``relayd config check``, which
opens the tables as the start does."""
import os
import pwd
import subprocess
import sys

import pytest

from relayd.config import EX_CONFIG

# Run as root, relayd (and config check) needs mail_owner's account: the test user's.
MAIL_OWNER = f"mail_owner = {pwd.getpwuid(os.geteuid()).pw_name}\n"


def check(directory):
    return subprocess.run([sys.executable, "-m", "relayd", "-c", str(directory), "config",
                           "check"], capture_output=True, text=True, timeout=60)


def test_a_missing_alias_table_says_relayd_postalias(tmp_path):
    (tmp_path / "main.cf").write_text(f"alias_maps = hash:{tmp_path}/aliases\n"
                                      "local_recipient_maps = $alias_maps\n" + MAIL_OWNER)
    result = check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (f"relayd: warning: hash:{tmp_path}/aliases is unavailable: open "
                             f"database {tmp_path}/aliases.db: No such file or directory "
                             f"(run relayd-postalias {tmp_path}/aliases)\n")


def test_a_missing_other_table_still_says_relayd_postmap(tmp_path):
    (tmp_path / "main.cf").write_text(f"alias_maps =\n{MAIL_OWNER}"
                                      f"virtual_alias_maps = hash:{tmp_path}/virtual\n")
    result = check(tmp_path)
    assert f"(run relayd-postmap {tmp_path}/virtual)" in result.stderr


@pytest.mark.skipif(not os.path.exists("/usr/sbin/postalias"),
                    reason="Debian's postfix is not installed")
def test_an_alias_table_postfix_built_says_relayd_postalias(tmp_path):
    (tmp_path / "aliases").write_text("root: admin@example.net\n")
    postfix_cf = tmp_path / "postfix"
    postfix_cf.mkdir()
    (postfix_cf / "main.cf").write_text("myorigin = mx.example.org\n")
    subprocess.run(["/usr/sbin/postalias", "-c", str(postfix_cf), str(tmp_path / "aliases")],
                   check=True, timeout=30)
    (tmp_path / "main.cf").write_text(f"alias_maps = hash:{tmp_path}/aliases\n"
                                      f"alias_database = hash:{tmp_path}/aliases\n" + MAIL_OWNER)
    result = check(tmp_path)
    assert result.returncode == EX_CONFIG
    assert result.stderr == (f"relayd: fatal: parameter alias_maps: {tmp_path}/aliases.db is not "
                             "a relayd table (built by Postfix's postalias?): run relayd-postalias "
                             f"{tmp_path}/aliases\n")

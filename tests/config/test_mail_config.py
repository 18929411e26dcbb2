"""Which configuration directory the programs read without -c: $MAIL_CONFIG,
else the compiled-in default (/etc/relayd, the systemd unit's) when it exists,
as Postfix's programs choose it; and sendmail called as mailq or newaliases.
Each program is run as installed (the console scripts beside this Python)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relayd.config import EX_CONFIG, config_directory

BIN = Path(sys.executable).parent


def run(argv, mail_config, stdin=""):
    env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}
    if mail_config is not None:
        env["MAIL_CONFIG"] = str(mail_config)
    return subprocess.run([str(BIN / argv[0]) if "/" not in argv[0] else argv[0], *argv[1:]],
                          input=stdin, capture_output=True, text=True, env=env, timeout=60)


# Every program that reads main.cf, as an admin types it (no -c).
PROGRAMS = [["relayd"], ["relayd", "config", "check"], ["relayd", "mailq"],
            ["sendmail", "-bp"], ["sendmail", "-bi"], ["sendmail", "-t"], ["newaliases"],
            ["mailq"], ["postqueue", "-p"], ["postsuper", "-d", "ALL"], ["postconf", "-n"],
            ["postmap", "-q", "k", "inline:{k=v}"], ["postalias", "-q", "k", "inline:{k=v}"],
            ["relayd-newaliases"], ["relayd", "newaliases"], ["relayd", "postmap", "-q", "k",
                                                              "inline:{k=v}"]]


@pytest.mark.parametrize("argv", PROGRAMS, ids=[" ".join(a[:2]) for a in PROGRAMS])
def test_every_program_reads_main_cf_of_mail_config(tmp_path, argv):
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/spool\n"
                                      "message_size_limit = 10M\n")
    result = run(argv, tmp_path, stdin="To: a@example.org\n\nhi\n")
    assert result.returncode == EX_CONFIG, result.stderr
    assert (f"fatal: {tmp_path}/main.cf, line 2: parameter message_size_limit: "
            "bad numerical value: 10M") in result.stderr


def test_c_comes_before_mail_config(tmp_path):
    (tmp_path / "main.cf").write_text("message_size_limit = 10M\n")
    good = tmp_path / "good"
    good.mkdir()
    (good / "main.cf").write_text("relayhost = [smart.example]\n")
    result = run(["postconf", "-c", str(good), "-h", "relayhost"], tmp_path)
    assert (result.returncode, result.stdout) == (0, "[smart.example]\n")


def test_without_mail_config_the_default_directory_only_when_it_exists(monkeypatch):
    monkeypatch.delenv("MAIL_CONFIG", raising=False)
    assert config_directory("/x") == "/x"
    assert config_directory() == ("/etc/relayd" if os.path.isdir("/etc/relayd") else None)
    monkeypatch.setenv("MAIL_CONFIG", "/y")
    assert config_directory() == "/y"


def test_newaliases_builds_the_alias_database_of_mail_config(tmp_path):
    """Not /etc/aliases.db (Postfix's, on a host being migrated): what
    alias_database of the configuration read names."""
    (tmp_path / "aliases").write_text("root: admin@example.net\n")
    (tmp_path / "main.cf").write_text("alias_database = hash:$config_directory/aliases\n")
    before = os.stat("/etc/aliases.db").st_mtime_ns if os.path.exists("/etc/aliases.db") else None
    for argv in (["newaliases"], ["sendmail", "-bi"]):
        (tmp_path / "aliases.db").unlink(missing_ok=True)
        result = run(argv, tmp_path)
        assert (result.returncode, result.stderr) == (0, "")
        query = run(["postalias", "-q", "root", f"hash:{tmp_path}/aliases"], tmp_path)
        assert query.stdout == "admin@example.net\n"
    after = os.stat("/etc/aliases.db").st_mtime_ns if os.path.exists("/etc/aliases.db") else None
    assert after == before


def test_postconf_e_edits_main_cf_of_mail_config(tmp_path):
    (tmp_path / "main.cf").write_text("# mine\nrelayhost =\n")
    assert run(["postconf", "-e", "relayhost=[smart.example]"], tmp_path).returncode == 0
    assert (tmp_path / "main.cf").read_text() == "# mine\nrelayhost = [smart.example]\n"


# -- sendmail by another name (Postfix's sendmail.c: the mode follows argv[0]) ------------

def test_sendmail_called_as_mailq_lists_the_queue(tmp_path):
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/spool\n")
    (tmp_path / "spool").mkdir()
    link = tmp_path / "mailq"
    link.symlink_to(BIN / "sendmail")
    result = run([str(link)], tmp_path)
    assert (result.returncode, result.stdout) == (0, "Mail queue is empty\n"), result.stderr
    # Nothing was submitted: the maildrop got no file.
    assert not any((tmp_path / "spool").glob("maildrop/*"))


def test_sendmail_called_as_newaliases_builds_the_aliases(tmp_path):
    (tmp_path / "aliases").write_text("postmaster: admin@example.net\n")
    (tmp_path / "main.cf").write_text(f"alias_database = hash:{tmp_path}/aliases\n")
    link = tmp_path / "bin" / "newaliases"
    link.parent.mkdir()
    link.symlink_to(BIN / "sendmail")
    result = run([str(link)], tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    query = run(["postalias", "-q", "postmaster", f"hash:{tmp_path}/aliases"], tmp_path)
    assert query.stdout == "admin@example.net\n"


def test_options_still_choose_the_mode_under_another_name(tmp_path):
    """"newaliases -bp" shows the mail queue (sendmail.c's comment)."""
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/spool\n")
    (tmp_path / "spool").mkdir()
    link = tmp_path / "newaliases"
    link.symlink_to(BIN / "sendmail")
    result = run([str(link), "-bp"], tmp_path)
    assert (result.returncode, result.stdout) == (0, "Mail queue is empty\n"), result.stderr


@pytest.mark.skipif(os.path.isdir("/etc/relayd"), reason="this host has /etc/relayd")
def test_newaliases_without_any_configuration_directory_builds_nothing():
    """Postfix's newaliases stops without its main.cf; relayd's built-in
    alias_database (hash:/etc/aliases) would overwrite Postfix's table."""
    before = os.stat("/etc/aliases.db").st_mtime_ns if os.path.exists("/etc/aliases.db") else None
    for argv in (["newaliases"], ["sendmail", "-bi"]):
        result = run(argv, None)
        assert result.returncode == EX_CONFIG
        assert result.stderr == ("relayd-newaliases: fatal: no configuration directory: give "
                                 "-c DIR or $MAIL_CONFIG, or make /etc/relayd\n")
    after = os.stat("/etc/aliases.db").st_mtime_ns if os.path.exists("/etc/aliases.db") else None
    assert after == before

"""``relayd config check|show``, run as an admin runs it, and compared with postconf."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from relayd.cli.config_cmd import run
from relayd.config import EX_CONFIG
from relayd.params import PARAMS

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = pathlib.Path(__file__).parent / "data"

SAMPLE_MAIN_CF = """\
# An edge relay in front of an internal server.
myhostname = mx1.example.com
mydomain = example.com
myorigin = $mydomain
mydestination =
relay_domains = example.com,
    example.net
relayhost = [exchange.internal.example.com]:25
mynetworks = 127.0.0.0/8, [::1]/128
    10.1.0.0/16
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,
	reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient,
  check_recipient_access hash:/etc/postfix/access
message_size_limit = 52428800
maximal_queue_lifetime = 3d
smtpd_banner = $myhostname ESMTP
inet_interfaces = 127.0.0.1
mail_name = Postfix
"""


def relayd_config(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "relayd.cli.config_cmd", *argv],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_check_good_configuration_exits_0(confdir):
    result = relayd_config("-c", confdir(main_cf=SAMPLE_MAIN_CF), "check")
    assert (result.returncode, result.stderr) == (0, "")


def test_check_bad_value_exits_78_naming_file_line_parameter(confdir):
    directory = confdir(main_cf="myhostname = mx.example.com\n\nmessage_size_limit = 10M\n")
    result = relayd_config("-c", directory, "check")
    assert result.returncode == EX_CONFIG == 78
    assert result.stderr == (f"relayd: fatal: {directory}/main.cf, line 3: parameter "
                             "message_size_limit: bad numerical value: 10M\n")


def test_check_warns_about_unused_parameters_on_stderr(confdir):
    directory = confdir(main_cf="relayhost = x\nfoo = bar\n")
    result = relayd_config("-c", directory, "check")
    assert result.returncode == 0
    assert result.stderr == f"relayd: warning: {directory}/main.cf, line 2: unused parameter: foo=bar\n"


def test_show_n_prints_explicit_settings_sorted(confdir, capsys):
    directory = confdir(main_cf="relayhost = [smart.example]\nmyorigin = $mydomain\n"
                                "mynetworks = 10.0.0.0/8\n  192.168.0.0/16\n")
    assert run(["show", "-n"], config_directory=directory) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"config_directory = {directory}", "mynetworks = 10.0.0.0/8 192.168.0.0/16",
        "myorigin = $mydomain", "relayhost = [smart.example]"]


def test_show_names_defaults_and_expansion(confdir, capsys):
    directory = confdir(main_cf="myhostname = mx.example.com\nmessage_size_limit = 1\n")
    assert run(["show", "message_size_limit", "smtpd_banner", "nosuch"],
               config_directory=directory) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["message_size_limit = 1",
                                "smtpd_banner = $myhostname ESMTP $mail_name"]
    assert err == "relayd: warning: unknown parameter: nosuch\n"
    assert run(["show", "-d", "message_size_limit", "relay_domains"],
               config_directory=directory) == 0
    assert capsys.readouterr().out.splitlines() == [
        "message_size_limit = 10240000", "relay_domains ="]
    assert run(["show", "-x", "smtpd_banner"], config_directory=directory) == 0
    assert capsys.readouterr().out == "smtpd_banner = mx.example.com ESMTP relayd\n"


def test_show_without_flags_lists_every_parameter(confdir, capsys):
    assert run(["show"], config_directory=confdir(main_cf="relayhost = x\n")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(PARAMS) and lines == sorted(lines)
    assert "relayhost = x" in lines


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["show", "-n", "-d"], ["show", "-q"],
                                  ["check", "extra"]])
def test_usage_errors(argv, capsys):
    assert run(argv) == 64
    assert "usage: relayd" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix's postconf not installed")
@pytest.mark.parametrize("main_cf", [SAMPLE_MAIN_CF, (DATA / "debian-main.cf").read_text()],
                         ids=["edge-relay", "debian-stock"])
def test_show_n_prints_what_postconf_n_prints(tmp_path, main_cf):
    (tmp_path / "main.cf").write_text(main_cf)
    shutil.copy(DATA / "debian-master.cf", tmp_path / "master.cf")
    for name in ("main.cf", "master.cf"):
        # postconf waits for a file written this very second to settle; age them.
        os.utime(tmp_path / name, (0, 0))
    postconf = subprocess.run(["postconf", "-c", str(tmp_path), "-n"],
                              capture_output=True, text=True, check=True)
    ours = relayd_config("-c", str(tmp_path), "show", "-n")
    assert ours.returncode == 0
    assert ours.stdout.splitlines() == postconf.stdout.splitlines()
    assert len(ours.stdout.splitlines()) >= 15

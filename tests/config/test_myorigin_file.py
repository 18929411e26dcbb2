"""Debian's ``myorigin = /etc/mailname``: Debian's Postfix reads the domain from
the first line of the file a myorigin starting with "/" names, and stops
(fatal) when it cannot read it or it is empty. Real files, as Debian has them."""
import subprocess
import sys

from relayd.config import EX_CONFIG, load_config
from relayd.rewrite.rewriter import Rewriter


def test_a_myorigin_naming_a_file_is_the_files_first_line(confdir, tmp_path):
    mailname = tmp_path / "mailname"
    mailname.write_text("mx.example.org\nsecond.example.org\n")
    config = load_config(confdir(main_cf=f"myorigin = {mailname}\n"))
    assert config["myorigin"] == "mx.example.org"
    # A bare name (mail from root) gets that domain, not the file's name.
    assert Rewriter(config).sender("root") == "root@mx.example.org"
    # As postconf does, show prints the setting as written.
    assert config.raw("myorigin") == str(mailname)


def test_a_reference_to_myorigin_gets_the_domain_too(confdir, tmp_path):
    (tmp_path / "mailname").write_text("mx.example.org\n")
    config = load_config(confdir(main_cf=f"myorigin = {tmp_path}/mailname\n"
                                         "smtpd_banner = $myorigin ESMTP\n"))
    assert config["smtpd_banner"] == "mx.example.org ESMTP"


def check(directory):
    return subprocess.run([sys.executable, "-m", "relayd", "-c", directory, "config", "check"],
                          capture_output=True, text=True, timeout=60)


def test_a_missing_myorigin_file_stops_the_check_naming_parameter_and_file(confdir, tmp_path):
    directory = confdir(main_cf=f"alias_maps =\nmyorigin = {tmp_path}/mailname\n")
    result = check(directory)
    assert result.returncode == EX_CONFIG
    assert result.stderr == (f"relayd: fatal: {directory}/main.cf, line 2: parameter myorigin: "
                             f"{tmp_path}/mailname: cannot open file: No such file or directory\n")


def test_an_empty_myorigin_file_stops_the_check(confdir, tmp_path):
    (tmp_path / "mailname").write_text("\n")
    directory = confdir(main_cf=f"myorigin = {tmp_path}/mailname\n")
    result = check(directory)
    assert result.returncode == EX_CONFIG
    assert result.stderr == (f"relayd: fatal: {directory}/main.cf, line 1: parameter myorigin: "
                             f"myorigin file {tmp_path}/mailname is empty\n")

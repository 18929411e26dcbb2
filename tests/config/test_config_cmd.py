"""``relayd config check|show``, run as an admin runs it, and compared with postconf."""
import os
import pathlib
import pwd
import shutil
import subprocess
import sys

import pytest

from relayd.cli.config_cmd import run
from relayd.config import EX_CONFIG
from relayd.params import PARAMS

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = pathlib.Path(__file__).parent / "data"

# Run as root, relayd (and config check) needs mail_owner's account: the test user's.
MAIL_OWNER = f"mail_owner = {pwd.getpwuid(os.geteuid()).pw_name}\n"

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


def test_check_good_configuration_exits_0(confdir, tmp_path):
    # The check opens the tables as the start does: the access table exists, and no
    # alias table is named (Postfix's default hash:/etc/aliases is not there).
    (tmp_path / "access").write_text("10.1.2.3 REJECT\n")
    main_cf = SAMPLE_MAIN_CF.replace("hash:/etc/postfix/access", f"texthash:{tmp_path}/access")
    result = relayd_config("-c", confdir(main_cf=main_cf + "alias_maps =\n" + MAIL_OWNER),
                           "check")
    assert (result.returncode, result.stderr) == (0, "")


def test_check_bad_value_exits_78_naming_file_line_parameter(confdir):
    directory = confdir(main_cf="myhostname = mx.example.com\n\nmessage_size_limit = 10M\n")
    result = relayd_config("-c", directory, "check")
    assert result.returncode == EX_CONFIG == 78
    assert result.stderr == (f"relayd: fatal: {directory}/main.cf, line 3: parameter "
                             "message_size_limit: bad numerical value: 10M\n")


def relayd(*argv):
    return subprocess.run([sys.executable, "-m", "relayd", *argv], capture_output=True,
                          text=True, timeout=60)


def fatal_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("relayd: fatal: ")]


# Each fails the start (relayd.master.check compiles restrictions and opens tables).
START_FAILURES = [
    ("check_clent_access hash:{d}/access",
     "parameter smtpd_recipient_restrictions: unknown restriction: check_clent_access"),
    ("check_client_access lmdb:{d}/access",
     "parameter smtpd_recipient_restrictions: check_client_access: unsupported dictionary "
     "type: lmdb"),
    ("check_client_access hash:{d}/missing",
     "parameter smtpd_recipient_restrictions: check_client_access: open database "
     "{d}/missing.db: No such file or directory (run relayd-postmap {d}/missing)"),
    ("check_client_access hash:{d}/postfix-built",
     "parameter smtpd_recipient_restrictions: check_client_access: {d}/postfix-built.db "
     "is not a relayd table (built by Postfix's postmap?): run relayd-postmap {d}/postfix-built"),
]


@pytest.mark.parametrize("restriction, message", START_FAILURES,
                         ids=["misspelled", "lmdb", "missing-db", "postfix-db"])
def test_check_fails_where_the_start_fails(confdir, tmp_path, restriction, message):
    d = tmp_path / "tables"
    d.mkdir()
    (d / "access").write_text("10.1.2.3 REJECT\n")
    (d / "postfix-built").write_text("10.1.2.3 REJECT\n")
    if "postfix-built" in restriction:
        if not os.path.exists("/usr/sbin/postmap"):
            pytest.skip("Debian's postfix is not installed")
        postfix_cf = tmp_path / "postfix-tools"
        postfix_cf.mkdir()
        (postfix_cf / "main.cf").write_text("myorigin = mx.example.org\n")
        subprocess.run(["/usr/sbin/postmap", "-c", str(postfix_cf), str(d / "postfix-built")],
                       check=True, timeout=30)
    directory = confdir(main_cf=f"queue_directory = {tmp_path}/spool\nalias_maps =\n"
                                f"{MAIL_OWNER}smtpd_recipient_restrictions = "
                                f"{restriction.format(d=d)},\n"
                                "    reject_unauth_destination\n",
                        master_cf="127.0.0.1:1 inet n - n - - smtpd\n")
    expected = [f"relayd: fatal: {message.format(d=d)}"]
    check = relayd("-c", directory, "config", "check")
    assert (check.returncode, fatal_lines(check.stderr)) == (EX_CONFIG, expected), check.stderr
    start = relayd("-c", directory, "-o", "maillog_file=/dev/stderr")
    assert (start.returncode, fatal_lines(start.stderr)) == (EX_CONFIG, expected), start.stderr
    assert not (tmp_path / "spool").exists()   # the check changed nothing


@pytest.mark.skipif(os.geteuid() != 0, reason="only a start as root changes to mail_owner")
def test_check_as_root_needs_mail_owners_account_as_the_start_does(confdir, tmp_path):
    directory = confdir(main_cf=f"queue_directory = {tmp_path}/spool\nalias_maps =\n"
                                "mail_owner = no-such-relayd-user\n",
                        master_cf="127.0.0.1:1 inet n - n - - smtpd\n")
    expected = ["relayd: fatal: parameter mail_owner: unknown user name value: "
                "no-such-relayd-user (create it, e.g. with systemd-sysusers)"]
    for argv in (["config", "check"], ["-o", "maillog_file=/dev/stderr"]):
        result = relayd("-c", directory, *argv)
        assert (result.returncode, fatal_lines(result.stderr)) == (EX_CONFIG, expected)


def test_check_applies_o_overrides(confdir, tmp_path):
    directory = confdir(main_cf="alias_maps =\n" + MAIL_OWNER +
                                "smtpd_recipient_restrictions = check_clent_access hash:/x\n")
    assert relayd("-c", directory, "config", "check").returncode == EX_CONFIG
    fixed = relayd("-c", directory, "-o", "smtpd_recipient_restrictions=reject_unauth_destination",
                   "config", "check")
    assert (fixed.returncode, fixed.stderr) == (0, "")
    bad = relayd("-c", directory, "-o", "smtpd_recipient_restrictions=reject_unauth_destination",
                 "-o", "message_size_limit=10M", "config", "check")
    assert bad.returncode == EX_CONFIG
    assert bad.stderr == "relayd: fatal: parameter message_size_limit: bad numerical value: 10M\n"
    shown = relayd("-c", directory, "-o", "relayhost=[smart.example]", "config", "show",
                   "relayhost")
    assert shown.stdout == "relayhost = [smart.example]\n"


@pytest.mark.parametrize("value", ["two", "-1", "2.5", "Auto", ""])
def test_bad_worker_count_exits_78_at_check_and_at_start(confdir, tmp_path, value):
    directory = confdir(main_cf=f"queue_directory = {tmp_path}/spool\n"
                                f"relayd_worker_processes = {value}\n",
                        master_cf="127.0.0.1:1 inet n - n - - smtpd\n")
    expected = (f"{directory}/main.cf, line 2: parameter relayd_worker_processes: "
                f"bad value: {value!r} (expected a number or one of 'auto')")
    for argv in (["config", "check"], []):   # then the daemon itself, as systemd starts it
        result = subprocess.run([sys.executable, "-m", "relayd", "-c", directory, *argv],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == EX_CONFIG, result.stderr
        assert result.stderr == f"relayd: fatal: {expected}\n"


@pytest.mark.parametrize("value, workers", [("auto", len(os.sched_getaffinity(0))), ("3", 3)])
def test_worker_count_is_a_number_or_auto(confdir, value, workers):
    from relayd.config import load_config
    from relayd.daemon import worker_count
    directory = confdir(main_cf=f"relayd_worker_processes = {value}\n")
    assert worker_count(load_config(directory)) == workers


def test_check_warns_about_unused_parameters_on_stderr(confdir):
    directory = confdir(main_cf="relayhost = x\nfoo = bar\nalias_maps =\n" + MAIL_OWNER)
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
@pytest.mark.parametrize("stock", [False, True], ids=["edge-relay", "debian-stock"])
def test_show_n_prints_what_postconf_n_prints(tmp_path, stock, debian_main_cf):
    (tmp_path / "main.cf").write_text(debian_main_cf if stock else SAMPLE_MAIN_CF)
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


# Typed parameters whose default is relayd's own, each said in docs/configuration.md
# ("Differences from Postfix"): Postfix's text is a compatibility_level or stress
# expression, a host-specific value, or a name of Postfix's own.
OWN_DEFAULTS = {"append_dot_mydomain", "compatibility_level", "mynetworks_style", "relay_domains",
                "smtpd_relay_restrictions", "smtputf8_enable",          # level >= 3.6
                "smtpd_hard_error_limit", "smtpd_timeout",              # ${stress?...} unstressed
                "smtpd_junk_command_limit",
                "myhostname", "mynetworks",                             # computed for the host
                "config_directory", "queue_directory", "mail_name",     # relayd's names
                "smtpd_forbid_bare_newline",                            # Postfix >= 3.9
                "smtpd_starttls_timeout", "smtpd_tls_fingerprint_digest",  # stress, level 3.6
                "smtpd_tls_protocols", "smtpd_tls_mandatory_protocols",   # TLS 1.2 and newer
                "tls_high_cipherlist", "tls_medium_cipherlist",           # no weak cipher
                "smtpd_sasl_type", "smtpd_tls_auth_only",              # no cyrus; AUTH over TLS
                "smtp_tls_security_level",                                # Postfix >= 3.11
                "smtp_tls_protocols", "smtp_tls_mandatory_protocols",     # TLS 1.2 and newer
                "smtp_sasl_tls_security_options",                         # PLAIN over TLS
                "smtpd_client_auth_rate_limit",                           # password guessing
                "mail_owner", "syslog_name"}                              # relayd's names


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix's postconf not installed")
def test_show_d_prints_postconf_d_for_every_typed_parameter(capsys):
    declared = sorted(n for n, p in PARAMS.items() if not p.compat)
    postconf = subprocess.run(["postconf", "-d", *declared], capture_output=True, text=True,
                              check=True)   # names it does not know: a warning, no line
    theirs = dict(line.partition(" =")[::2] for line in postconf.stdout.splitlines())
    typed = [n for n in declared if n in theirs]
    assert run(["show", "-d", *typed]) == 0
    ours = dict(line.partition(" =")[::2] for line in capsys.readouterr().out.splitlines())
    assert len(typed) > 120
    assert {n: (ours[n], theirs[n]) for n in typed
            if ours[n] != theirs[n] and n not in OWN_DEFAULTS} == {}
    # The ones relayd does not share are its extensions (relayd_*, and the one below)
    # or newer than this Postfix.
    assert {n for n, p in PARAMS.items()
            if not p.compat and n not in theirs and not n.startswith("relayd_")} == {
        "smtpd_session_limit", "relocated_prefix_enable"}

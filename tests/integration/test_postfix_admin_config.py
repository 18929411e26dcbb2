"""A configuration directory written as a Postfix admin would write it, served
by a real relayd over real SMTP, and read by Debian's Postfix to prove the
files are real Postfix files."""
import shutil
import smtplib
import subprocess
import sys

import pytest

from tests.integration.test_relay_path import dialogue, send
from tests.support.relayd_proc import RelaydProcess

MAIN_CF = """\
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost
relay_domains = example.com, example.net
mynetworks = 192.0.2.0/24
alias_maps =
smtpd_sender_restrictions = check_sender_access texthash:$config_directory/sender_access
smtpd_recipient_restrictions = check_recipient_access hash:$config_directory/access,
    reject_unauth_destination
relay_recipient_maps = hash:$config_directory/relay_recipients
virtual_alias_maps = hash:$config_directory/virtual
relocated_maps = hash:$config_directory/relocated
canonical_maps = hash:$config_directory/canonical
header_checks = regexp:$config_directory/header_checks
"""

FILES = {
    "access": "blocked@example.com REJECT\ntempfail@example.com DEFER Try again later\n",
    "sender_access": "bad.example REJECT\n",
    "relay_recipients": "user@example.com x\nother@example.net x\n",
    "virtual": "alias@example.com user@example.com, other@example.net\n",
    "relocated": "moved@example.com new@example.org\n",
    "canonical": "old@example.com user@example.com\n",
    "header_checks": "/^Subject: Make money fast/ REJECT\n"
                     "/^X-Mailer: Microsoft Outlook Express/ REJECT\n",
}
HASHED = ("access", "relay_recipients", "virtual", "relocated", "canonical")


@pytest.fixture
def admin_relayd(tmp_path, sink):
    # Later settings override earlier ones, in main.cf as in Postfix.
    proc = RelaydProcess(tmp_path / "etc", sink.port, MAIN_CF)
    for name, text in FILES.items():
        (proc.directory / name).write_text(text)
    for name in HASHED:
        built = proc.command("postmap", f"hash:{proc.directory / name}")
        assert built.returncode == 0, built.stderr
    proc.start()
    yield proc
    proc.stop()


def rcpt_line(port: int, sender: str, recipient: str) -> bytes:
    out = dialogue(port, f"EHLO client.example\r\nMAIL FROM:<{sender}>\r\n"
                         f"RCPT TO:<{recipient}>\r\nQUIT\r\n".encode())
    return [l for l in out.split(b"\r\n") if l[3:4] == b" "][2]


@pytest.mark.parametrize("sender, recipient, expected", [
    ("a@good.example", "blocked@example.com",
     b"554 5.7.1 <blocked@example.com>: Recipient address rejected: Access denied"),
    ("a@good.example", "tempfail@example.com",
     b"450 4.7.1 <tempfail@example.com>: Recipient address rejected: Try again later"),
    ("a@good.example", "nobody@example.com",
     b"550 5.1.1 <nobody@example.com>: Recipient address rejected: "
     b"User unknown in relay recipient table"),
    ("a@good.example", "moved@example.com",
     b"550 5.1.6 <moved@example.com>: Recipient address rejected: User has moved to new@example.org"),
    ("spammer@bad.example", "user@example.com",
     b"554 5.7.1 <spammer@bad.example>: Sender address rejected: Access denied"),
    # smtpd_relay_restrictions (Postfix's default ends in defer_unauth_destination)
    # are evaluated before smtpd_recipient_restrictions.
    ("a@good.example", "someone@foreign.example",
     b"454 4.7.1 <someone@foreign.example>: Relay access denied"),
    ("a@good.example", "user@example.com", b"250 2.1.5 Ok"),
    ("a@good.example", "alias@example.com", b"250 2.1.5 Ok"),
])
def test_each_reply_a_client_gets(admin_relayd, sender, recipient, expected):
    assert rcpt_line(admin_relayd.port, sender, recipient) == expected


def test_what_reaches_the_smart_host(admin_relayd, sink):
    send(admin_relayd, "a@good.example", ["alias@example.com"], b"Subject: hello\r\n\r\nhi\r\n")
    send(admin_relayd, "a@good.example", ["old@example.com"], b"Subject: renamed\r\n\r\nhi\r\n")
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(admin_relayd, "a@good.example", ["user@example.com"],
             b"Subject: Make money fast\r\n\r\nbuy now\r\n")
    assert (err.value.smtp_code, err.value.smtp_error) == (550, b"5.7.1 message content rejected")
    with pytest.raises(smtplib.SMTPDataError):
        send(admin_relayd, "a@good.example", ["user@example.com"],
             b"X-Mailer: Microsoft Outlook Express 6\r\nSubject: x\r\n\r\nhi\r\n")
    first, second = sink.wait_for(2, timeout=15)
    by_subject = {b"hello" if b"Subject: hello" in m.data else b"renamed": m for m in (first, second)}
    assert sorted(by_subject[b"hello"].recipients) == ["other@example.net", "user@example.com"]
    assert by_subject[b"renamed"].recipients == ["user@example.com"]
    assert len(sink.messages) == 2
    admin_relayd.wait_log("reject: header Subject: Make money fast")


@pytest.mark.skipif(shutil.which("postconf", path="/usr/sbin:/usr/bin") is None,
                    reason="Debian's postfix is not installed")
def test_the_files_are_real_postfix_files(admin_relayd):
    directory = admin_relayd.directory
    postfix_cf = directory.parent / "postfix-view"
    postfix_cf.mkdir()
    # A directory with the same main.cf for Postfix: its postconf and postmap must not
    # see relayd's hash: files (relayd's own format), so maps are queried as texthash:.
    shutil.copy(directory / "main.cf", postfix_cf / "main.cf")
    ours = subprocess.run([sys.executable, "-m", "relayd", "-c", str(postfix_cf), "config", "show",
                           "-n"], capture_output=True, text=True, check=True).stdout.splitlines()
    theirs = subprocess.run(["/usr/sbin/postconf", "-c", str(postfix_cf), "-n"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert sorted(ours) == sorted(theirs)
    for table, key in [("access", "blocked@example.com"), ("relay_recipients", "user@example.com"),
                       ("virtual", "alias@example.com"), ("relocated", "moved@example.com"),
                       ("sender_access", "bad.example"), ("access", "nobody@example.com")]:
        postfix = subprocess.run(["/usr/sbin/postmap", "-c", str(postfix_cf), "-q", key,
                                  f"texthash:{directory / table}"], capture_output=True, text=True)
        relayd = admin_relayd.command("postmap", "-q", key, f"texthash:{directory / table}")
        assert (relayd.returncode, relayd.stdout) == (postfix.returncode, postfix.stdout), key
    for subject in ("Subject: Make money fast now", "Subject: fine", "X-Mailer: Microsoft Outlook Express 6"):
        postfix = subprocess.run(["/usr/sbin/postmap", "-c", str(postfix_cf), "-q", subject,
                                  f"regexp:{directory / 'header_checks'}"], capture_output=True, text=True)
        relayd = admin_relayd.command("postmap", "-q", subject, f"regexp:{directory / 'header_checks'}")
        assert (relayd.returncode, relayd.stdout) == (postfix.returncode, postfix.stdout), subject

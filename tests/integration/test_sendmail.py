"""sendmail into the maildrop and relayd's pickup, against a real relayd and
the recording sink. The submitter runs as ``nobody``: it needs no write
access to the queue, only to the maildrop."""
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pytest

import relayd.cli.postalias  # noqa: F401 - loaded before the child drops to nobody
import relayd.cli.postqueue  # noqa: F401
import relayd.config  # noqa: F401
import relayd.pickup  # noqa: F401
from relayd import maildrop
from relayd.cli import sendmail
from relayd.cli.sendmail import read_message
from relayd.pickup import add_missing_headers, wake
from tests.support.relayd_proc import RelaydProcess

HELD = "relayd_worker_processes = 2\nrelayd_pickup_wakeup_time = 3600s\n"


def as_nobody(argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
    """Run ``sendmail argv`` in a child that became nobody; (status, stdout, stderr).
    In-process (fork): the interpreter under /root is out of nobody's reach."""
    nobody = pwd.getpwnam("nobody")
    files = [tempfile.TemporaryFile() for _ in range(3)]
    files[0].write(stdin)
    files[0].seek(0)
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 70
        try:
            for fd, f in enumerate(files):
                os.dup2(f.fileno(), fd)
            sys.stdin = open(0, "r", closefd=False)   # pytest's capture objects have no fds
            sys.stdout, sys.stderr = (open(fd, "w", buffering=1, closefd=False) for fd in (1, 2))
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            status = sendmail.main(argv)
            sys.stdout.flush()
        except BaseException:  # noqa: BLE001 - shown to the test as the child's stderr
            traceback.print_exc()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    out = []
    for f in files[1:]:
        f.seek(0)
        out.append(f.read())
    return os.waitstatus_to_exitcode(status), out[0], out[1]


@pytest.fixture
def public_relayd(sink):
    """A relayd in a directory other users may traverse (pytest's are root's only)."""
    directory = Path(tempfile.mkdtemp(prefix="relayd-sendmail-"))
    directory.chmod(0o711)
    proc = RelaydProcess(directory, sink.port, HELD)
    try:
        proc.start()
        # another worker may answer SMTP before worker 0 has made the maildrop
        deadline = time.monotonic() + 10
        while not (proc.spool / "public" / "pickup").exists():
            assert time.monotonic() < deadline, "worker 0 made no maildrop"
            time.sleep(0.05)
        yield proc
    finally:
        proc.stop()
        shutil.rmtree(directory, ignore_errors=True)


def maildrop_files(proc) -> list[str]:
    return os.listdir(proc.spool / "maildrop")


def test_sendmail_t_as_nobody_is_picked_up_and_relayed(public_relayd, sink):
    message = (b"To: Bob <bob@relay.example>\nBcc: carol@relay.example\nSubject: cron\n\n"
               b".a dotted line\n.\nstill the body with -i\n")
    status, _, err = as_nobody(["-C", str(public_relayd.directory), "-t", "-i"], message)
    assert status == 0, err
    (msg,) = sink.wait_for(1, timeout=15)
    assert sorted(msg.recipients) == ["bob@relay.example", "carol@relay.example"]
    assert msg.sender == "nobody@relayd.test"
    head, _, body = msg.data.partition(b"\r\n\r\n")
    m = re.match(rb"Received: by relayd\.test \(relayd, from userid 65534\)\r\n"
                 rb"\tid ([0-9A-F]+); \w{3}, ", msg.data)
    assert m, msg.data
    assert b"\r\nBcc:" not in head
    assert b"\r\nFrom: nobody <nobody@relayd.test>\r\n" in head + b"\r\n"
    assert re.search(rb"\r\nMessage-Id: <\d{14}\." + m.group(1) + rb"@relayd\.test>\r\n", head + b"\r\n")
    assert b"\r\nDate: " in head
    assert body == b".a dotted line\r\n.\r\nstill the body with -i\r\n"
    log = public_relayd.wait_log("status=sent")
    assert f"relayd/pickup[" in log and f"{m.group(1).decode()}: uid=65534 from=<nobody@relayd.test>" in log
    assert maildrop_files(public_relayd) == []


def test_mail_sent_while_relayd_is_down_goes_out_at_its_next_start(public_relayd, sink):
    public_relayd.stop()
    message = b"From: Alice <alice@example.org>\nSubject: later\n\nfirst\n.\nnot part of it\n"
    status, _, err = as_nobody(["-C", str(public_relayd.directory), "-f", "alice@example.org",
                                "-F", "Alice", "bob@relay.example"], message)
    assert status == 0, err
    (name,) = maildrop_files(public_relayd)
    # mailq shows it waiting in the maildrop, as Postfix's does
    listing = subprocess.run([os.path.join(os.path.dirname(sys.executable), "postqueue"), "-c",
                              str(public_relayd.directory), "-j"], capture_output=True, text=True)
    (record,) = [json.loads(line) for line in listing.stdout.splitlines()]
    assert (record["queue_name"], record["queue_id"], record["sender"], record["recipients"]) == (
        "maildrop", name, "alice@example.org", [{"address": "bob@relay.example"}])
    public_relayd.start()
    (msg,) = sink.wait_for(1, timeout=15)
    assert (msg.sender, msg.recipients) == ("alice@example.org", ["bob@relay.example"])
    assert msg.data.endswith(b"\r\n\r\nfirst\r\n")   # a lone "." ended it (no -i)
    assert msg.data.count(b"\r\nFrom: ") == 1


def test_sendmail_bs_speaks_smtp_on_stdin_and_stdout(public_relayd, sink):
    script = (b"EHLO client\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@relay.example>\r\n"
              b"DATA\r\nSubject: bs\r\n\r\nhello\r\n.\r\nQUIT\r\n")
    status, out, err = as_nobody(["-C", str(public_relayd.directory), "-bs"], script)
    assert status == 0, err
    codes = [line[:4] for line in out.decode().splitlines()]
    assert codes[0] == "220 " and "354 " in codes and codes[-1] == "221 "
    assert re.search(r"^250 2\.0\.0 Ok: queued as [0-9A-F]+\r$", out.decode(), re.M)
    (msg,) = sink.wait_for(1, timeout=15)
    assert (msg.sender, msg.recipients) == ("alice@example.org", ["bob@relay.example"])
    assert b"Subject: bs\r\n" in msg.data


def test_limits_and_untrusted_maildrop_files(public_relayd, sink, tmp_path):
    directory = str(public_relayd.directory)
    big = b"Subject: big\n\n" + b"x" * 2000 + b"\n"
    small = public_relayd.directory / "main.cf"
    small.write_text(small.read_text() + "message_size_limit = 1000\n")
    status, _, err = as_nobody(["-C", directory, "bob@relay.example"], big)
    assert status == 65 and b"sendmail: fatal: message file too big" in err
    assert as_nobody(["-C", directory], b"x\n")[0] == 64   # no recipient
    drop = public_relayd.spool / "maildrop"
    (drop / "JUNK").write_bytes(b"not a maildrop file\n")
    (tmp_path / "secret").write_bytes(maildrop.MAGIC + b'{"sender": "", "recipients": ["x@y"]}\n')
    os.symlink(tmp_path / "secret", drop / "LINK")
    assert wake(str(public_relayd.spool))
    log = public_relayd.wait_log("LINK: uid=0: cannot open")
    assert "JUNK: uid=0: unexpected file format: file removed" in log
    deadline = time.monotonic() + 10
    while maildrop_files(public_relayd):
        assert time.monotonic() < deadline, maildrop_files(public_relayd)
        time.sleep(0.05)
    assert (tmp_path / "secret").exists()
    assert not re.search(r"relayd/pickup\[\d+\]: [0-9A-F]+: uid=", public_relayd.log())


def test_sendmail_bp_and_q(public_relayd):
    status, out, _ = as_nobody(["-C", str(public_relayd.directory), "-bp"], b"")
    # nobody may not read the queue of a running relayd: as Postfix's postqueue it says so
    assert status == 77 and out == b""
    assert sendmail.main(["-C", str(public_relayd.directory), "-q"]) == 0


# -- sans-I/O parts ---------------------------------------------------------------------------

def test_read_message_converts_to_wire_form_and_extracts_recipients(tmp_path):
    path = tmp_path / "in"
    path.write_bytes(b"From sender Thu Dec  3 10:00:00 2026\nTo: a@x.example,\n  B <b@x.example>\n"
                     b"Bcc: c@x.example\n  (hidden)\nSubject: s\n\n..dots\n.\nafter\n")
    with open(path, "rb") as f:
        content, rcpts = read_message(f.fileno(), False, 0, 5, extract=True)
    assert rcpts == ["a@x.example", "b@x.example", "c@x.example"]
    assert content == (b"To: a@x.example,\r\n  B <b@x.example>\r\nSubject: s\r\n\r\n...dots\r\n")


def test_missing_headers_are_added_to_the_header_block():
    out = add_missing_headers(b"Subject: x\r\n\r\nbody\r\n", "u@h.example", "U Ser", "ABC", 0,
                              "h.example")
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[:2] == [b"Subject: x", b"Message-Id: <19700101000000.ABC@h.example>"]
    assert lines[2].startswith(b"Date: ") and lines[3:] == [b"From: U Ser <u@h.example>"]
    assert body == b"body\r\n"
    full = b"From: a@b\r\nDate: x\r\nMessage-ID: <m@b>\r\n\r\n"
    assert add_missing_headers(full, "u@h", "", "ABC", 0, "h") == full


def test_pickup_headers_match_postfix(public_relayd, sink):
    """The same message through Postfix's sendmail/pickup and relayd's: the same
    header lines in the same order (names, hosts and times aside)."""
    from tests.support import postfix as pf
    if pf.available():
        pytest.skip(pf.available())
    postfix = pf.PrivatePostfix(sink.port).start()
    message = b"To: bob@relay.example\nSubject: compare\n\nbody\n"
    try:
        theirs = subprocess.run(["/usr/sbin/sendmail", "-C", str(postfix.etc), "-f",
                                 "alice@example.org", "-t"], input=message, timeout=30)
        assert theirs.returncode == 0
        (first,) = sink.wait_for(1, timeout=30)
    finally:
        postfix.stop()
    status, _, err = as_nobody(["-C", str(public_relayd.directory), "-f", "alice@example.org",
                                "-t"], message)
    assert status == 0, err
    second = sink.wait_for(2, timeout=15)[1]

    def shape(data: bytes) -> list[str]:
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        head = re.sub(r"\(Postfix|\(relayd", "(NAME", head)
        head = re.sub(r"postfix\.test|relayd\.test", "HOST", head)
        head = re.sub(r"userid \d+", "userid N", head)
        head = re.sub(r"From: \w+ <", "From: USER <", head)
        head = re.sub(r"id [0-9A-Za-z]+;", "id QID;", head)
        head = re.sub(r"<\d{14}\.[0-9A-Za-z]+@", "<STAMP.QID@", head)
        return [re.sub(r"\w{3}, [ \d]\d \w{3} \d{4} [\d:]{8} [+-]\d{4}( \(\w+\))?", "DATE", line)
                for line in head.split("\r\n")]
    assert shape(second.data) == shape(first.data)


def test_sendmail_bv_reports_what_would_happen(tmp_path, capsys):
    (tmp_path / "main.cf").write_text(
        "myhostname = relayd.test\nmydestination = $myhostname\nrelay_domains = relay.example\n"
        f"queue_directory = {tmp_path}/spool\nrelayhost = [127.0.0.1]:2526\n"
        "relocated_maps = inline:{ gone@relayd.test=new@example.org }\n"
        "local_transport = error:5.1.1 local delivery is disabled\n")
    assert sendmail.main(["-C", str(tmp_path), "-bv", "bob@relay.example", "gone@relayd.test",
                          "me@relayd.test"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "<bob@relay.example>: deliverable via relay:[127.0.0.1]:2526",
        "<gone@relayd.test>: undeliverable: 5.1.6 User has moved to new@example.org",
        "<me@relayd.test>: undeliverable: 5.1.1 local delivery is disabled"]

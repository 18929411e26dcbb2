"""Log lines look like Postfix's, so pflogsumm and friends read them."""
import logging
import os
import re

import gevent

from relayd.maillog import BatchingHandler, MaillogFormatter, whatsup


def record(name, level, msg, *args):
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_lines_have_postfix_syslog_shape():
    fmt = MaillogFormatter("mail.example")
    line = fmt.format(record("relayd.smtpd", logging.INFO, "%s: client=%s", "ABC", "x[1.2.3.4]"))
    assert re.fullmatch(r"\w{3} [ \d]\d \d\d:\d\d:\d\d mail\.example relayd/smtpd\[\d+\]: "
                        r"ABC: client=x\[1\.2\.3\.4\]", line)
    warning = fmt.format(record("relayd.qmgr", logging.WARNING, "disk full"))
    assert warning.endswith(f"relayd/qmgr[{os.getpid()}]: warning: disk full")
    fatal = MaillogFormatter("m", with_timestamp=False).format(
        record("relayd.master", logging.CRITICAL, "bad config"))
    assert fatal == f"relayd/master[{os.getpid()}]: fatal: bad config"


def test_lines_of_one_loop_turn_are_written_together(tmp_path):
    path = tmp_path / "maillog"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    handler = BatchingHandler(fd)
    handler.setFormatter(MaillogFormatter("m", with_timestamp=False))
    for n in range(3):
        handler.emit(record("relayd.smtpd", logging.INFO, "line %d", n))
    assert path.read_bytes() == b""          # held until the loop turn ends
    gevent.sleep(0)
    lines = path.read_text().splitlines()
    assert [l.split(": ", 1)[1] for l in lines] == ["line 0", "line 1", "line 2"]
    os.close(fd)


def test_configured_loggers_write_the_same_lines_by_the_direct_path(tmp_path):
    from relayd import maillog
    path = tmp_path / "maillog"
    root = logging.getLogger("relayd")
    saved = (list(root.handlers), root.level, root.propagate)
    flags = (logging._srcfile, logging.logThreads, logging.logMultiprocessing, logging.logProcesses)
    handler = maillog.configure("mail.example", str(path))
    try:
        maillog.SMTPD.info("%s: client=%s", "ABC", "x[192.0.2.1]")
        maillog.QMGR.warning("disk %s", "full")
        maillog.SMTPD.info("helo=<%s>", "a\r\nb\x1b")  # the direct path sanitises too
        handler.flush()
        lines = path.read_text().splitlines()
        assert lines[2].endswith("helo=<a??b?>")
        assert re.fullmatch(r"\w{3} [ \d]\d \d\d:\d\d:\d\d mail\.example relayd/smtpd\[\d+\]: "
                            r"ABC: client=x\[192\.0\.2\.1\]", lines[0])
        assert lines[1].endswith("relayd/qmgr[%d]: warning: disk full" % os.getpid())
    finally:
        for logger in (maillog.SMTPD, maillog.CLEANUP, maillog.QMGR, maillog.SMTP, maillog.BOUNCE):
            logger.__dict__.pop("info", None)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        root.propagate = saved[2]
        (logging._srcfile, logging.logThreads, logging.logMultiprocessing,
         logging.logProcesses) = flags
        handler.close()
        os.close(handler.fd)


def test_every_line_is_made_printable_at_the_formatter():
    # Client and next-hop strings can carry CR, LF, escape sequences and Unicode
    # line separators; none may start a log line or reach a terminal (Postfix's
    # msg_output runs printable() on every line). Printable UTF-8 stays.
    fmt = MaillogFormatter("m", with_timestamp=False)
    hostile = "helo=<evil\r\nNov 25 09:36:43 mail relayd/smtpd[1]: forged\x1b[2J\u2028\u0085\t\ufffd>"
    line = fmt.format(record("relayd.smtpd", logging.INFO, "%s J\u00f6rg", hostile))
    assert line.endswith("helo=<evil??Nov 25 09:36:43 mail relayd/smtpd[1]: forged?[2J????> J\u00f6rg")
    assert line.isprintable()


def test_printable_keeps_clean_text_as_it_is():
    from relayd.smtp.text import printable
    text = "4F3A21C0B2: from=<a@example.org>, size=1234, nrcpt=1 (queue active) \u00e9"
    assert printable(text) is text
    assert printable("a\x00b", "_") == "a_b"


def test_whatsup_is_postfix_log_whatsup():
    """smtpd's refusal line: text before the envelope; None fields left out."""
    assert whatsup("NOQUEUE", "reject", "RCPT", "mx.example[192.0.2.1]",
                   "554 5.7.1 <b@y.example>: Relay access denied", sender="", recipient="b@y.example",
                   protocol="ESMTP", helo="mx.example") == (
        "NOQUEUE: reject: RCPT from mx.example[192.0.2.1]: 554 5.7.1 <b@y.example>: Relay access "
        "denied; from=<> to=<b@y.example> proto=ESMTP helo=<mx.example>")
    assert whatsup("NOQUEUE", "reject", "CONNECT", "unknown[192.0.2.1]", "554 5.7.1 no",
                   protocol="SMTP") == "NOQUEUE: reject: CONNECT from unknown[192.0.2.1]: 554 5.7.1 no; proto=SMTP"


def test_whatsup_text_last_is_cleanup_act_log():
    line = whatsup("4F3A21C0B2", "reject", "header Subject: spam", "h[192.0.2.1]", "550 5.7.1 no",
                   sender="a@x.example", recipient="b@y.example", protocol="ESMTP", helo="h",
                   text_last=True)
    assert line == ("4F3A21C0B2: reject: header Subject: spam from h[192.0.2.1]; from=<a@x.example> "
                    "to=<b@y.example> proto=ESMTP helo=<h>: 550 5.7.1 no")
    assert whatsup("Q", "warn", "body x", "local", "", text_last=True) == "Q: warn: body x from local;"


def _configured(**kwargs):
    """maillog.configure(...) with the relayd logger restored afterwards."""
    from contextlib import contextmanager

    from relayd import maillog

    @contextmanager
    def scope():
        root = logging.getLogger("relayd")
        saved = (list(root.handlers), root.level, root.propagate)
        handler = maillog.configure("mail.example", **kwargs)
        try:
            yield handler
        finally:
            for logger in (maillog.SMTPD, maillog.CLEANUP, maillog.QMGR, maillog.SMTP,
                           maillog.BOUNCE):
                logger.__dict__.pop("info", None)
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
            root.propagate = saved[2]
            handler.close()
    return scope()


def test_by_default_lines_go_to_syslog_as_postfix_sends_them(tmp_path, monkeypatch):
    """A real datagram socket stands in for /dev/log (the path is the only change)."""
    import socket

    from relayd import maillog
    path = str(tmp_path / "log")
    syslogd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslogd.bind(path)
    syslogd.settimeout(5)
    monkeypatch.setattr(maillog, "SYSLOG_SOCKET", path)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    with _configured(syslog_name="edge", syslog_facility="local3") as handler:
        maillog.SMTPD.info("%s: client=%s", "ABC", "x[192.0.2.1]")
        maillog.QMGR.warning("disk %s", "full")
        handler.flush()
        first, second = syslogd.recv(4096).decode(), syslogd.recv(4096).decode()
    syslogd.close()
    # local3 = 19: info 19*8+6, warning 19*8+4; no host name (syslogd adds it)
    assert re.fullmatch(r"<158>\w{3} [ \d]\d \d\d:\d\d:\d\d edge/smtpd\[\d+\]: "
                        r"ABC: client=x\[192\.0\.2\.1\]", first)
    assert re.fullmatch(rf"<156>.* edge/qmgr\[{os.getpid()}\]: warning: disk full", second)


def test_when_stderr_is_the_journal_lines_carry_priority_prefixes(tmp_path, monkeypatch):
    from relayd import maillog
    stderr = tmp_path / "stderr"
    with open(stderr, "w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setattr("sys.stderr", f)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        with _configured() as handler:
            maillog.SMTPD.info("%s: client=%s", "ABC", "x[192.0.2.1]")
            maillog.MASTER.error("bad %s", "thing")
            handler.flush()
    pid = os.getpid()
    assert stderr.read_text().splitlines() == [
        f"<6>relayd/smtpd[{pid}]: ABC: client=x[192.0.2.1]",
        f"<3>relayd/master[{pid}]: error: bad thing"]

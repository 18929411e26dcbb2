"""master.cf's ``-o syslog_name=...`` tags that service's smtpd lines, as
Postfix tags Debian's submission service ``postfix/submission/smtpd``; the
other services and the other programs keep main.cf's syslog_name."""
import re
import smtplib

import pytest

from tests.integration.test_daemon import wait_until
from tests.support.relayd_proc import RelaydProcess, free_port


@pytest.fixture
def relayd(tmp_path, sink):
    proc = RelaydProcess(tmp_path / "relayd", sink.port)
    proc.submission = free_port()
    (proc.directory / "master.cf").write_text(
        f"127.0.0.1:{proc.port} inet n - n - - smtpd\n"
        f"127.0.0.1:{proc.submission} inet n - n - - smtpd\n"
        "  -o syslog_name=relayd/submission\n")
    yield proc.start()
    proc.stop()


def test_a_service_syslog_name_tags_its_smtpd_lines_only(relayd, sink):
    for port, n in ((relayd.port, 1), (relayd.submission, 2)):
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("a@example.org", ["ok@relay.example"], f"Subject: {n}\r\n\r\nx\r\n")
    sink.wait_for(2)
    log = wait_until(lambda: relayd.log().count(": removed") == 2 and relayd.log(),
                     what="both messages delivered", relayd=relayd)
    assert re.search(r" relayd/submission/smtpd\[\d+\]: [0-9A-F]+: client=", log), log
    assert re.search(r" relayd/smtpd\[\d+\]: [0-9A-F]+: client=", log), log
    # cleanup, qmgr and smtp are services of their own: main.cf's name.
    assert "relayd/submission/cleanup" not in log and "relayd/submission/qmgr" not in log
    assert len(re.findall(r" relayd/qmgr\[\d+\]: [0-9A-F]+: from=<a@example.org>", log)) == 2

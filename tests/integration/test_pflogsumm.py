"""pflogsumm (Debian's package) reads relayd's mail log as a Postfix log.

A scripted load through a real relayd: messages delivered, bounced (the next
hop refuses the recipient with 5xx), deferred (4xx), and recipients refused
by relayd's own restrictions. pflogsumm over the log must count each kind
and name the reject reason.
"""
import re
import shutil
import smtplib
import subprocess

import pytest

from tests.integration.test_daemon import wait_until

pytestmark = pytest.mark.skipif(shutil.which("pflogsumm") is None,
                                reason="pflogsumm not installed (tools/setup-env installs it)")

RESTRICTIONS = ("smtpd_recipient_restrictions = check_recipient_access "
                "inline:{ blocked@relay.example=REJECT }, permit_mynetworks, "
                "reject_unauth_destination\n")


def grand_totals(report: str) -> dict[str, int]:
    section = report.split("Grand Totals", 1)[1].split("Per-Hour", 1)[0]
    return {name: int(n) for n, name in re.findall(r"^\s*(\d+)\s+(received|delivered|"
                                                   r"deferred|bounced|rejected)\b", section,
                                                   re.M)}


def test_pflogsumm_counts_a_scripted_load(relayd_factory, sink):
    sink.reply_for_rcpt["nosuch@relay.example"] = "550 5.1.1 <nosuch@relay.example>: no such user"
    sink.reply_for_rcpt["later@relay.example"] = "451 4.3.0 try again later"
    relayd = relayd_factory(RESTRICTIONS + "relayd_worker_processes = 2\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
        for n in range(3):
            smtp.sendmail("a@example.org", ["ok@relay.example"], f"Subject: {n}\r\n\r\nx\r\n")
        for n in range(2):   # a null sender: the bounce makes no DSN to count
            smtp.sendmail("<>", ["nosuch@relay.example"], f"Subject: b{n}\r\n\r\nx\r\n")
        smtp.sendmail("a@example.org", ["later@relay.example"], "Subject: d\r\n\r\nx\r\n")
        for _ in range(2):
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail("a@example.org", ["blocked@relay.example"], "Subject: r\r\n\r\nx\r\n")
    sink.wait_for(3)
    wait_until(lambda: relayd.log().count("status=bounced") == 2
               and "status=deferred" in relayd.log(), what="the bounces and the deferral")
    relayd.stop()
    report = subprocess.run(["pflogsumm", "--syslog-name=relayd", str(relayd.log_path)],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert grand_totals(report) == {"received": 6, "delivered": 3, "deferred": 1,
                                    "bounced": 2, "rejected": 2}, report
    rejects = report.split("message reject detail", 1)[1]
    assert re.search(r"RCPT\n\s+Recipient address rejected: Access denied \(total: 2\)\n"
                     r"\s+2\s+blocked@relay\.example", rejects), rejects

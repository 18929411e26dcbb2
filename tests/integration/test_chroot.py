"""master.cf's chroot column: workers jailed in the queue directory.

A real relayd started as root (mail_owner = relaydtowner) whose smtpd
service says ``y`` in the chroot column: every worker's root
(/proc/PID/root) is the queue directory, and what a worker does after the
chroot still works: relaying to the sink, a bounce for a recipient the sink
refuses, sendmail through pickup, local delivery through the privileged
local process, unix:passwd.byname, the metrics endpoint, ``relayd status``
and a reload (whose new workers are jailed again); TLS to a next hop named
in /etc/hosts, verified with smtp_tls_CAfile. A chroot asked for by only some smtpd services is
warned about and not applied.
"""
import os
import signal
import smtplib
from pathlib import Path

import pytest

from tests.integration.test_daemon import wait_until, workers_of
from tests.integration.test_privileges import open_directory, uids  # noqa: F401 (fixture)
from tests.integration.test_sendmail import as_nobody
from tests.integration.test_metrics import samples, scrape, value
from tests.support.relayd_proc import RelaydProcess, free_port
from tests.support.sink import sink_tls_context
from tests.support.users import system_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chroot")
OWNER, ANN = "relaydtowner", "relaydtann"


def jailed_relayd(directory: Path, sink, mail_base: Path, columns: list[str],
                  extra: str = "") -> RelaydProcess:
    relayd = RelaydProcess(directory, sink.port,
                           "relayd_worker_processes = 2\nalias_maps =\n"
                           f"relayd_maildir_base = {mail_base}\n" + extra, mail_owner=OWNER)
    lines = [f"127.0.0.1:{relayd.port} inet n - {columns[0]} - - smtpd\n"]
    lines += [f"127.0.0.1:{relayd.port + 1 + i} inet n - {c} - - smtpd\n"
              for i, c in enumerate(columns[1:])]
    (directory / "master.cf").write_text("".join(lines))
    return relayd.start()


def roots(relayd) -> dict[int, str]:
    """Each worker's root directory."""
    out = {}
    for pid in workers_of(relayd.proc.pid):
        try:
            out[pid] = os.readlink(f"/proc/{pid}/root")
        except FileNotFoundError:   # exited meanwhile
            continue
    return out


def jailed_workers(relayd) -> set[int]:
    """The two workers, once both are in the queue directory and no longer root."""
    def ready():
        found = roots(relayd)
        return (len(found) == 2 and set(found.values()) == {str(relayd.spool)}
                and all(uids(pid)[0] != 0 for pid in found) and set(found))
    return wait_until(ready, what="two jailed workers", relayd=relayd)


@pytest.fixture(scope="module")
def users():
    return {name: system_user(name) for name in (OWNER, ANN)}


def test_jailed_workers_relay_bounce_pick_up_and_deliver_locally(users, open_directory,  # noqa: F811
                                                                 sink):
    mail_base = open_directory / "mail"
    mail_base.mkdir(mode=0o755)
    sink.reply_for_rcpt = {"refused@relay.example": "550 5.1.1 No such user"}
    metrics_port = free_port()
    relayd = jailed_relayd(open_directory / "relayd", sink, mail_base, ["y"],
                           f"relayd_metrics_listen = 127.0.0.1:{metrics_port}\n")
    try:
        first = jailed_workers(relayd)
        with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
            smtp.sendmail("sender@example.org", ["ok@relay.example"], b"Subject: a\r\n\r\na\r\n")
            smtp.sendmail("sender@example.org", ["refused@relay.example"],
                          b"Subject: b\r\n\r\nb\r\n")
            smtp.sendmail("sender@example.org", [f"{ANN}@relayd.test"], b"Subject: c\r\n\r\nc\r\n")
            # unix:passwd.byname (local_recipient_maps) answers from inside the jail.
            smtp.mail("sender@example.org")
            code, _ = smtp.rcpt("relaydt-nobody-like-this@relayd.test")
            assert code == 550
        # The DSN for the refused recipient goes to the sender, through the sink.
        messages = sink.wait_for(2, timeout=15)
        assert sorted(m.recipients[0] for m in messages) == ["ok@relay.example",
                                                             "sender@example.org"]
        dsn = next(m for m in messages if m.recipients == ["sender@example.org"])
        assert b"Undelivered Mail Returned to Sender" in dsn.data
        assert b"refused@relay.example" in dsn.data
        (new,) = wait_until(lambda: list((mail_base / ANN / "Maildir" / "new").glob("*"))
                            if (mail_base / ANN / "Maildir" / "new").is_dir() else [],
                            what="ann's message", relayd=relayd)
        assert new.stat().st_uid == users[ANN].pw_uid
        status, _, err = as_nobody(["-C", str(relayd.directory), "-f", "nobody@relayd.test",
                                    "picked@relay.example"], b"Subject: d\n\nd\n")
        assert status == 0, err
        picked = wait_until(lambda: [m for m in sink.messages
                                     if m.recipients == ["picked@relay.example"]],
                            what="the picked-up message", relayd=relayd)
        assert len(picked) == 1
        # Worker 0's metrics endpoint sums both workers' files, all inside the jail.
        wait_until(lambda: value(samples(scrape(metrics_port)),
                                 "relayd_smtpd_connects_total") >= 2,
                   what="the sessions in the metrics", relayd=relayd)
        status = relayd.command("status")
        assert status.returncode == 0, status.stderr
        assert f"queue {relayd.spool}\n" in status.stdout
        assert f"queue {relayd.spool}/worker-1" in status.stdout
        os.kill(relayd.proc.pid, signal.SIGHUP)
        second = wait_until(lambda: not (jailed_workers(relayd) & first)
                            and jailed_workers(relayd), what="new jailed workers", relayd=relayd)
        assert not second & first
        with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
            smtp.sendmail("sender@example.org", ["after@relay.example"], b"Subject: e\r\n\r\ne\r\n")
        wait_until(lambda: any(m.recipients == ["after@relay.example"] for m in sink.messages),
                   what="mail after the reload", relayd=relayd)
        log = relayd.log()
        assert "Traceback" not in log and "error:" not in log and "fatal:" not in log, log
        assert "warning:" not in log, log
    finally:
        relayd.stop()


def test_a_jailed_worker_verifies_tls_with_the_cafile_and_hosts_read_before(  # noqa: F811
        users, open_directory, sink, tls_certs):
    """smtp_tls_CAfile and /etc/hosts ("localhost") are outside the jail: read before."""
    sink.tls_context = sink_tls_context(tls_certs)
    relayd = jailed_relayd(open_directory / "relayd", sink, open_directory / "mail", ["y"],
                           f"relayhost = [localhost]:{sink.port}\n"
                           "smtp_tls_security_level = secure\n"
                           f"smtp_tls_CAfile = {tls_certs.cert('ca')}\nsmtp_tls_loglevel = 1\n")
    try:
        jailed_workers(relayd)
        with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
            smtp.sendmail("sender@example.org", ["tls@relay.example"], b"Subject: t\r\n\r\nt\r\n")
        (message,) = wait_until(lambda: sink.messages, what="the message over TLS",
                                relayd=relayd)
        assert message.tls == "TLSv1.3"
        relayd.wait_log("Verified TLS connection established to localhost[127.0.0.1]:"
                        f"{sink.port}")
    finally:
        relayd.stop()


def test_a_chroot_not_every_smtpd_service_asks_for_is_not_applied(users, open_directory,  # noqa: F811
                                                                  sink):
    relayd = jailed_relayd(open_directory / "relayd", sink, open_directory / "mail", ["y", "n"])
    try:
        relayd.wait_log(f"service 127.0.0.1:{relayd.port}: chroot ignored: not every smtpd "
                        f"service says y (service 127.0.0.1:{relayd.port + 1} does not)")
        found = wait_until(lambda: len(roots(relayd)) == 2 and roots(relayd),
                           what="two workers", relayd=relayd)
        assert set(found.values()) == {"/"}
    finally:
        relayd.stop()

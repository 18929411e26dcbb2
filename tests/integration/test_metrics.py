"""The Prometheus endpoint of a real relayd with two workers, scraped over HTTP.

A scripted load (delivered, bounced, deferred, refused by a restriction)
must show the right counts, summed over both workers; a worker killed and
restarted must not make a total go backwards; ``promtool check metrics``
(Debian's prometheus package) finds nothing to report in the output.
"""
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_anvil import worker_of
from tests.integration.test_daemon import wait_until
from tests.support.relayd_proc import free_port

RESTRICTIONS = ("smtpd_recipient_restrictions = check_recipient_access "
                "inline:{ blocked@relay.example=REJECT }, permit_mynetworks, "
                "reject_unauth_destination\n")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def samples(text: str) -> dict:
    """{(sample name, sorted label items): value}."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(snapshot: dict, name: str, **labels) -> float:
    return snapshot.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: dict, after: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def metered(relayd_factory):
    port = free_port()
    relayd = relayd_factory(RESTRICTIONS + "relayd_worker_processes = 2\n"
                            f"relayd_metrics_listen = 127.0.0.1:{port}\n")
    relayd.metrics_port = port

    def quiet():   # the start-up probe's session is in the files: a settled baseline
        now = samples(scrape(port))
        connects = value(now, "relayd_smtpd_connects_total")
        return connects >= 1 and value(now, "relayd_smtpd_disconnects_total") == connects
    wait_until(quiet, what="the start-up session in the metrics", relayd=relayd)
    return relayd


def sessions_on_both_workers(relayd) -> list[smtplib.SMTP]:
    """SMTP sessions open until both workers hold at least one (the kernel
    hands each new connection to whichever worker accepts first)."""
    sessions, holders = [], set()
    wait_until(lambda: _one_more(relayd, sessions, holders) >= 2, what="sessions on both workers")
    return sessions


def _one_more(relayd, sessions: list, holders: set) -> int:
    smtp = smtplib.SMTP("127.0.0.1", relayd.port, timeout=10)
    sessions.append(smtp)
    holders.add(worker_of(smtp.sock))
    return len(holders)


def test_metrics_count_a_scripted_load_over_two_workers(metered, sink):
    sink.reply_for_rcpt["nosuch@relay.example"] = "550 5.1.1 <nosuch@relay.example>: no such user"
    sink.reply_for_rcpt["later@relay.example"] = "451 4.3.0 try again later"
    before = samples(scrape(metered.metrics_port))
    sessions = sessions_on_both_workers(metered)
    sent = 0
    for n, smtp in enumerate(sessions):
        smtp.sendmail("a@example.org", ["ok@relay.example"], f"Subject: {n}\r\n\r\nx\r\n")
        sent += 1
    smtp = sessions[0]
    smtp.sendmail("a@example.org", ["nosuch@relay.example"], "Subject: b\r\n\r\nx\r\n")
    smtp.sendmail("a@example.org", ["later@relay.example"], "Subject: d\r\n\r\nx\r\n")
    for _ in range(2):
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("a@example.org", ["blocked@relay.example"], "Subject: r\r\n\r\nx\r\n")
    for smtp in sessions:
        smtp.quit()
    sink.wait_for(sent)

    def settled():
        now = samples(scrape(metered.metrics_port))
        done = (delta(before, now, "relayd_smtpd_disconnects_total") == len(sessions)
                and delta(before, now, "relayd_smtp_deferred_messages_by_dsn_total",
                          dsn="4.3.0") >= 1
                and delta(before, now, "relayd_bounce_non_delivery_notification_total") == 1)
        return now if done else None
    after = wait_until(settled, what="the load in the metrics", relayd=metered)

    accepted = sent + 2   # + the bounced and the deferred one
    assert delta(before, after, "relayd_smtpd_connects_total") == len(sessions)
    assert delta(before, after, "relayd_smtpd_sessions_opened_total", service="127.0.0.1:"
                 + str(metered.port)) == len(sessions) or \
        delta(before, after, "relayd_smtpd_sessions_opened_total", service="smtp") == len(sessions)
    assert delta(before, after, "relayd_smtpd_commands_total", command="MAIL", code="250",
                 enhanced_code="2.1.0") == accepted + 2
    assert delta(before, after, "relayd_smtpd_commands_total", command="RCPT", code="554",
                 enhanced_code="5.7.1") == 2
    assert delta(before, after, "relayd_smtpd_commands_total", command="END-OF-DATA",
                 code="250", enhanced_code="2.0.0") == accepted
    assert delta(before, after, "relayd_smtpd_messages_processed_total",
                 sasl_method="NONE") == accepted
    assert delta(before, after, "relayd_smtpd_messages_rejected_total", code="554") == 2
    assert delta(before, after, "relayd_smtpd_restriction_rejects_total",
                 restriction="check_recipient_access", code="554", enhanced_code="5.7.1") == 2
    assert delta(before, after, "relayd_cleanup_messages_processed_total") == accepted
    assert delta(before, after, "relayd_qmgr_messages_inserted_size_bytes_count") >= accepted
    assert delta(before, after, "relayd_smtp_messages_processed_total", status="sent") >= sent
    assert delta(before, after, "relayd_smtp_bounced_messages_by_dsn_total", dsn="5.1.1") == 1
    assert delta(before, after, "relayd_delivery_recipients_total", transport="smtp",
                 status="sent", dsn="2.0.0") >= sent
    assert delta(before, after, "relayd_smtp_delivery_delay_seconds_count",
                 stage="transmission") >= sent + 1
    assert delta(before, after, "relayd_table_lookups_total",
                 table="inline:{ blocked@relay.example=REJECT }", result="found") == 2
    # The deferred message is still queued, and only it.
    queued = wait_until(lambda: value(samples(scrape(metered.metrics_port)),
                                      "relayd_showq_queue_depth", queue="deferred") == 1 or None,
                        what="the deferred message in showq_queue_depth", relayd=metered)
    assert queued
    # Both workers counted a share: each has its own snapshot file.
    shares = [value(samples(_file_as_text(metered, n)), "relayd_smtpd_connects_total")
              for n in (0, 1)]
    assert all(shares) and sum(shares) >= len(sessions), shares


def _file_as_text(relayd, worker: int) -> str:
    """One worker's snapshot, in the exposition format (as if it were the only one)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from relayd.metrics import snapshots
    from relayd.metrics.exposition import SnapshotCollector
    snap = snapshots.read(os.path.join(snapshots.directory(str(relayd.spool)),
                                       f"worker-{worker}.json"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: [snap]))
    return generate_latest(registry).decode()


def test_a_restarted_worker_does_not_reset_totals(metered, sink):
    with smtplib.SMTP("127.0.0.1", metered.port, timeout=10) as smtp:
        for n in range(3):
            smtp.sendmail("a@example.org", ["ok@relay.example"], f"Subject: {n}\r\n\r\nx\r\n")
        victim = worker_of(smtp.sock)
    sink.wait_for(3)
    total = "relayd_cleanup_messages_processed_total"
    counted = wait_until(lambda: value(samples(scrape(metered.metrics_port)), total) >= 3 and
                         value(samples(scrape(metered.metrics_port)), total),
                         what="the messages in the metrics")
    os.kill(victim, signal.SIGKILL)
    metered.wait_log(f"pid {victim} killed by signal 9")
    wait_until(lambda: _serves(metered.port), what="the workers serving again")
    for _ in range(20):   # while the restarted worker comes up, scrape: never lower
        assert value(samples(scrape(metered.metrics_port)), total) >= counted
    with smtplib.SMTP("127.0.0.1", metered.port, timeout=10) as smtp:
        smtp.sendmail("a@example.org", ["ok@relay.example"], "Subject: after\r\n\r\nx\r\n")
    wait_until(lambda: value(samples(scrape(metered.metrics_port)), total) >= counted + 1,
               what="the new message counted on top")


def _serves(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.recv(512).startswith(b"220")
    except OSError:
        return False


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (tools/setup-env installs prometheus)")
def test_promtool_finds_nothing_to_report(metered, sink, tmp_path):
    with smtplib.SMTP("127.0.0.1", metered.port, timeout=10) as smtp:
        smtp.sendmail("a@example.org", ["ok@relay.example"], "Subject: p\r\n\r\nx\r\n")
    sink.wait_for(1)
    wait_until(lambda: value(samples(scrape(metered.metrics_port)),
                             "relayd_qmgr_messages_removed_total") >= 1, what="the delivery")
    text = scrape(metered.metrics_port)
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0 and not checked.stdout.strip() \
        and not checked.stderr.strip(), checked.stdout + checked.stderr


def test_a_slow_scraper_holds_nothing_up(metered):
    """A client that connects and sends nothing is cut at the deadline; scrapes go on."""
    idle = [socket.create_connection(("127.0.0.1", metered.metrics_port)) for _ in range(3)]
    try:
        assert "relayd_smtpd_connects_total" in scrape(metered.metrics_port)
        with smtplib.SMTP("127.0.0.1", metered.port, timeout=10) as smtp:
            assert smtp.noop()[0] == 250
    finally:
        for s in idle:
            s.close()

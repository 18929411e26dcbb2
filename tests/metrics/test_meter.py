"""The metrics' own arithmetic: what a worker counts, how workers add up,
how a restarted worker continues (relayd/metrics/)."""
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from relayd.config import ConfigError, load_config
from relayd.metrics import Meter, register
from relayd.metrics.catalogue import METRICS
from relayd.metrics.endpoint import metrics_address
from relayd.metrics.exposition import FRESH_FOR, SnapshotCollector


def exported(*snaps) -> dict:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: list(snaps)))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def snap(meter: Meter, when: float | None = None) -> dict:
    s = meter.snapshot()
    s["time"] = time.time() if when is None else when
    return s


def test_workers_add_up_and_histograms_are_cumulative():
    a, b = Meter(), Meter()
    a.inc("smtpd_connects", amount=3)
    b.inc("smtpd_connects")
    a.observe("table_lookup_duration_seconds", "hash:/x", value=0.0003)
    b.observe("table_lookup_duration_seconds", "hash:/x", value=0.2)
    out = exported(snap(a), snap(b))
    assert out[("relayd_smtpd_connects_total", ())] == 4
    bucket = "relayd_table_lookup_duration_seconds_bucket"
    assert out[(bucket, (("le", "0.0005"), ("table", "hash:/x")))] == 1
    assert out[(bucket, (("le", "0.5"), ("table", "hash:/x")))] == 2
    assert out[(bucket, (("le", "+Inf"), ("table", "hash:/x")))] == 2
    assert out[("relayd_table_lookup_duration_seconds_sum", (("table", "hash:/x"),))] \
        == pytest.approx(0.2003)


def test_a_dead_workers_gauges_drop_out_but_its_counts_stay():
    live, dead = Meter(), Meter()
    for m in (live, dead):
        m.inc("smtpd_connects")
        m.add("smtpd_sessions", "smtp", amount=2)
    out = exported(snap(live), snap(dead, time.time() - FRESH_FOR - 1))
    assert out[("relayd_smtpd_connects_total", ())] == 2
    assert out[("relayd_smtpd_sessions", (("service", "smtp"),))] == 2


def test_the_oldest_message_is_the_oldest_of_all_workers_not_a_sum():
    a, b = Meter(), Meter()
    a.add_source(lambda: [("queue_oldest_message_age_seconds", ("deferred",), 50.0)])
    b.add_source(lambda: [("queue_oldest_message_age_seconds", ("deferred",), 70.0)])
    out = exported(snap(a), snap(b))
    assert out[("relayd_queue_oldest_message_age_seconds", (("queue", "deferred"),))] == 70


def test_a_successor_continues_counters_and_histograms():
    first = Meter()
    first.inc("smtpd_connects", amount=5)
    first.observe("qmgr_messages_inserted_recipients", value=3)
    first.add("smtpd_sessions", "smtp")
    successor = Meter()
    successor.resume(snap(first))
    successor.inc("smtpd_connects")
    out = exported(snap(successor))
    assert out[("relayd_smtpd_connects_total", ())] == 6
    assert out[("relayd_qmgr_messages_inserted_recipients_count", ())] == 1
    assert ("relayd_smtpd_sessions", (("service", "smtp"),)) not in out  # a state, not carried


def test_every_declared_metric_is_exported_and_named_by_convention():
    out = exported(snap(Meter()))
    families = {name for name, _ in out}
    for metric in METRICS.values():
        assert metric.full_name.startswith("relayd_")
        assert not metric.name.endswith("_total")
        if not metric.labels:
            suffix = {"counter": "_total", "gauge": "", "histogram": "_count"}[metric.kind]
            assert metric.full_name + suffix in families


def test_the_listen_address_is_checked_with_the_parameter_named():
    assert metrics_address(load_config(relayd_metrics_listen="")) is None
    assert metrics_address(load_config(relayd_metrics_listen="127.0.0.1:9154")) == ("127.0.0.1", 9154)
    assert metrics_address(load_config(relayd_metrics_listen="[::1]:9154")) == ("::1", 9154)
    for bad in ("9154", "127.0.0.1:", "::1:9154", "127.0.0.1:nosuchservice"):
        with pytest.raises(ConfigError, match="relayd_metrics_listen"):
            metrics_address(load_config(relayd_metrics_listen=bad))


def test_an_embedding_program_exports_from_its_registry():
    registry = CollectorRegistry(auto_describe=False)
    register(registry)
    assert "relayd_smtpd_connects_total" in generate_latest(registry).decode()

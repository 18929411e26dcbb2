"""Snapshots to Prometheus metric families: the sum over the workers.

Counters and histograms are summed over every snapshot (a worker that is
gone still counts: its successor continues from its file, and a number no
longer in use keeps its last totals), gauges only over the snapshots of
live workers (written within :data:`FRESH_FOR` seconds).
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterable

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)

from relayd.metrics.catalogue import COUNTER, GAUGE, METRICS

FRESH_FOR = 5.0  # a worker writes every second; older gauges are a dead worker's


def families(snapshots: Iterable[dict], now: float | None = None):
    """The metric families of ``snapshots`` (as :meth:`Meter.snapshot` makes
    them, with their ``time``), every declared metric included."""
    now = time.time() if now is None else now
    counters: dict = {}
    gauges: dict = {}
    histograms: dict = {}
    for snap in snapshots:
        for metric, labels, value in snap.get("counters", ()):
            key = (metric, tuple(labels))
            counters[key] = counters.get(key, 0) + value
        if now - snap.get("time", now) <= FRESH_FOR:
            for metric, labels, value in snap.get("gauges", ()):
                key = (metric, tuple(labels))
                known = METRICS.get(metric)
                if key in gauges and known is not None and known.merge == "max":
                    gauges[key] = max(gauges[key], value)
                else:
                    gauges[key] = gauges.get(key, 0) + value
        for metric, labels, cell in snap.get("histograms", ()):
            key = (metric, tuple(labels))
            mine = histograms.get(key)
            if mine is None:
                histograms[key] = list(cell)
            elif len(mine) == len(cell):
                histograms[key] = [a + b for a, b in zip(mine, cell)]
    for metric in METRICS.values():
        if metric.kind == COUNTER:
            family = CounterMetricFamily(metric.full_name, metric.help, labels=metric.labels)
            _fill(family, metric, counters)
        elif metric.kind == GAUGE:
            family = GaugeMetricFamily(metric.full_name, metric.help, labels=metric.labels)
            _fill(family, metric, gauges)
        else:
            family = HistogramMetricFamily(metric.full_name, metric.help, labels=metric.labels)
            for labels, cell in _of(metric, histograms) or _zero(metric, [0] * (len(metric.buckets) + 2)):
                family.add_metric(list(labels), _cumulative(metric.buckets, cell), cell[-1])
        yield family


def _of(metric, values: dict) -> list:
    return sorted((labels, v) for (name, labels), v in values.items()
                  if name == metric.name and len(labels) == len(metric.labels))


def _zero(metric, value) -> list:
    """An unlabelled metric shows 0 before its first event (a dashboard sees a line)."""
    return [((), value)] if not metric.labels else []


def _fill(family, metric, values: dict) -> None:
    for labels, value in _of(metric, values) or _zero(metric, 0):
        family.add_metric(list(labels), value)


def _cumulative(bounds, cell) -> list[tuple[str, float]]:
    out, running = [], 0
    for bound, count in zip(list(bounds) + [math.inf], cell):
        running += count
        out.append(("+Inf" if bound == math.inf else _le(bound), running))
    return out


def _le(bound: float) -> str:
    return repr(float(bound))


class SnapshotCollector:
    """A prometheus_client collector over ``read()``, which returns snapshots."""

    def __init__(self, read: Callable[[], list[dict]]):
        self.read = read

    def collect(self):
        return families(self.read())

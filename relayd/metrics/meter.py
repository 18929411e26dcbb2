"""The process's own counts: plain dictionaries, cheap to update.

Code that counts something calls :data:`relayd.metrics.METER` (``inc``,
``add``, ``observe``); nothing there locks, allocates a file or talks to
another process, so the cost per event is a dictionary update. The worker
writes the whole meter to its snapshot file once a second
(:mod:`relayd.metrics.snapshots`); an embedding program exports it directly
(:func:`relayd.metrics.register`).

Gauges that describe a state (queue depth, connections in the pool) are not
counted but read when wanted: :meth:`Meter.add_source` registers a callable
that yields ``(metric, labels, value)`` for gauges and ``(metric, labels,
values)`` for histograms of a state (the ages of the queued messages).
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Callable, Iterable

from relayd.metrics.catalogue import METRICS

Labels = tuple[str, ...]
Source = Callable[[], Iterable[tuple[str, Labels, object]]]


class Meter:
    """Counters, gauges and histograms of one process, keyed by (metric, labels)."""

    def __init__(self):
        self.counters: dict[tuple[str, Labels], float] = {}
        self.gauges: dict[tuple[str, Labels], float] = {}
        # (metric, labels) -> [count per bucket (the last one +Inf), sum]; not cumulative
        self.histograms: dict[tuple[str, Labels], list] = {}
        self._bounds = {m.name: m.buckets for m in METRICS.values() if m.buckets}
        self._highest = {m.name for m in METRICS.values() if m.merge == "max"}
        self._sources: list[Source] = []

    def inc(self, metric: str, *labels: str, amount: float = 1) -> None:
        """Add ``amount`` to a counter."""
        key = (metric, labels)
        self.counters[key] = self.counters.get(key, 0) + amount

    def add(self, metric: str, *labels: str, amount: float = 1) -> None:
        """Add ``amount`` (may be negative) to a gauge."""
        key = (metric, labels)
        self.gauges[key] = self.gauges.get(key, 0) + amount

    def observe(self, metric: str, *labels: str, value: float) -> None:
        """One observation of a histogram."""
        key = (metric, labels)
        cell = self.histograms.get(key)
        bounds = self._bounds[metric]
        if cell is None:
            cell = self.histograms[key] = [0] * (len(bounds) + 1) + [0.0]
        cell[bisect_left(bounds, value)] += 1
        cell[-1] += value

    def add_source(self, source: Source) -> None:
        """Register a callable read at every snapshot for gauges of a state."""
        self._sources.append(source)

    def remove_source(self, source: Source) -> None:
        """Forget a source registered with :meth:`add_source` (a relay that stopped)."""
        if source in self._sources:
            self._sources.remove(source)

    def snapshot(self) -> dict:
        """Everything as JSON-able lists: counters and histograms as counted,
        gauges as counted plus what the sources report now."""
        gauges = dict(self.gauges)
        histograms = {key: list(cell) for key, cell in self.histograms.items()}
        for source in list(self._sources):
            for metric, labels, value in source():
                if isinstance(value, (int, float)):
                    key = (metric, labels)
                    if metric in self._highest and key in gauges:
                        gauges[key] = max(gauges[key], value)
                    else:
                        gauges[key] = gauges.get(key, 0) + value
                    continue
                bounds = self._bounds[metric]
                cell = histograms.setdefault((metric, labels), [0] * (len(bounds) + 1) + [0.0])
                for v in value:
                    cell[bisect_left(bounds, v)] += 1
                    cell[-1] += v
        return {"counters": [[m, list(l), v] for (m, l), v in self.counters.items()],
                "gauges": [[m, list(l), v] for (m, l), v in gauges.items()],
                "histograms": [[m, list(l), cell] for (m, l), cell in histograms.items()]}

    def resume(self, snapshot: dict) -> None:
        """Continue the counters and histograms of ``snapshot`` (the file of the
        worker this one replaces), so that no total ever goes backwards."""
        for metric, labels, value in snapshot.get("counters", ()):
            if metric in METRICS:
                self.inc(metric, *labels, amount=value)
        for metric, labels, cell in snapshot.get("histograms", ()):
            bounds = self._bounds.get(metric)
            if bounds is None or len(cell) != len(bounds) + 2:
                continue  # the buckets changed with an upgrade: start that one again
            mine = self.histograms.setdefault((metric, tuple(labels)), [0] * len(cell))
            for i, v in enumerate(cell):
                mine[i] += v

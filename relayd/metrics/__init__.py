"""Prometheus metrics: what relayd counts, and how it gets to a scraper.

- :mod:`.catalogue` declares every metric once;
- :data:`METER` (:mod:`.meter`) is where code counts, in memory;
- :mod:`.snapshots` writes each worker's meter to a file once a second;
- :mod:`.exposition` sums the workers' files into metric families;
- :mod:`.endpoint` serves them over HTTP (``relayd_metrics_listen``).

A program that embeds :class:`relayd.Relay` exports the same metrics from
its own prometheus_client registry with :func:`register`.
"""
from __future__ import annotations

import time

from relayd.metrics.meter import Meter

#: The meter of this process.
METER = Meter()

__all__ = ["METER", "Meter", "register", "tls_labels"]


def tls_labels(state) -> tuple[str, str, str, str, str]:
    """The labels postfix_exporter reads from a "TLS connection established"
    line: trust, protocol, cipher, secret_bits, algorithm_bits."""
    return state.trust, state.protocol, state.cipher, str(state.bits), str(state.bits)


def register(registry=None) -> None:
    """Export this process's metrics (an embedded Relay's) from ``registry``
    (prometheus_client's default registry when None)."""
    from prometheus_client import REGISTRY

    from relayd.metrics.exposition import SnapshotCollector

    def read():
        snap = METER.snapshot()
        snap["time"] = time.time()
        return [snap]
    (registry or REGISTRY).register(SnapshotCollector(read))

"""The Prometheus endpoint (``relayd_metrics_listen``): HTTP on the event loop.

Worker 0 serves it on the socket the master bound, as it runs pickup: the
sum of every worker's snapshot file, read in the threadpool at each scrape.
Each connection has a deadline and the server a small pool, so a slow or
hostile scraper ties up nothing else.
"""
from __future__ import annotations

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer
from prometheus_client import CollectorRegistry, make_wsgi_app

from relayd.config import ConfigError
from relayd.config.mastercf import listen_address
from relayd.metrics import METER, snapshots
from relayd.metrics.exposition import SnapshotCollector

CONNECTIONS = 8        # scrapes served at once
DEADLINE = 10.0        # seconds for one request, from accept to the last byte


class _Handler(WSGIHandler):
    def handle(self):
        with gevent.Timeout(DEADLINE, False):
            super().handle()


class MetricsEndpoint:
    """Serves the workers' summed metrics on ``sock``."""

    def __init__(self, sock, queue_directory: str):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(
            lambda: gevent.get_hub().threadpool.apply(snapshots.read_all, (queue_directory,))))
        self.server = WSGIServer(sock, make_wsgi_app(registry), spawn=Pool(CONNECTIONS),
                                 handler_class=_Handler, log=None, error_log=None)

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address[:2]

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop(timeout=1)


def metrics_address(config) -> tuple[str, int] | None:
    """``relayd_metrics_listen`` as (host, port); None when empty."""
    text = config["relayd_metrics_listen"].strip()
    if not text:
        return None

    def error(message):
        return ConfigError(f"parameter relayd_metrics_listen: {message}")
    host, port = listen_address(text, error, "address")
    if not host:
        raise error(f"give a host, e.g. 127.0.0.1:{port}")
    return host, port


class WorkerMetrics:
    """A worker's part: write its snapshot file, and in worker 0 serve the
    endpoint on the socket the master bound for ``relayd_metrics_listen``."""

    def __init__(self, config, worker: int, sockets: dict):
        self.writer = snapshots.SnapshotWriter(METER, config["queue_directory"], worker)
        address = metrics_address(config)
        self.endpoint = None
        if worker == 0 and address in sockets:
            self.endpoint = MetricsEndpoint(sockets[address], config["queue_directory"])

    def start(self) -> None:
        self.writer.start()
        if self.endpoint is not None:
            self.endpoint.start()

    def stop(self) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()
        self.writer.stop()

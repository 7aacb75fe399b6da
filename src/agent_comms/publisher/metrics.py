"""Prometheus metrics of the sidecar, read from its counters at scrape time (nothing on the hot path).

Names and meanings are the contract in observability/README.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from agent_comms.publisher.publisher import Publisher


class PublisherCollector(Collector):
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        p = self._publisher
        s = p.summary()
        lines = CounterMetricFamily(
            "agent_comms_publish_lines", "Lines whose fate is settled, by result.", labels=["result"]
        )
        lines.add_metric(["acked"], s.lines_published - s.lines_duplicate)
        lines.add_metric(["duplicate"], s.lines_duplicate)
        lines.add_metric(["abandoned"], s.lines_pending if p.finished else 0)
        yield lines
        yield GaugeMetricFamily(
            "agent_comms_publish_pending_lines",
            "Lines read but not yet acknowledged by JetStream.",
            value=0 if p.finished else s.lines_pending,
        )
        yield CounterMetricFamily(
            "agent_comms_publish_bytes",
            "Bytes of encoded bodies handed to JetStream.",
            value=s.bytes_published,
        )
        yield CounterMetricFamily(
            "agent_comms_publish_retries",
            "Publishes sent again after a timeout or an error.",
            value=s.retries,
        )


def serve_metrics(publisher: Publisher, port: int) -> None:
    """Serve /metrics on `port` from a daemon thread (prometheus_client's own server)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PublisherCollector(publisher))
    start_http_server(port, registry=registry)

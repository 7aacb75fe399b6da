"""The web half's Prometheus metrics, registered in the consumer's registry (one /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class WebMetrics:
    """`agent_comms_web_*`: SSE clients, what the live fan-out read and sent, resyncs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.sse_clients = Gauge("agent_comms_web_sse_clients", "Open SSE streams.", registry=r)
        self.sse_events = Counter(
            "agent_comms_web_sse_events", "Events written to SSE streams (history and live).", registry=r
        )
        self.sse_bytes = Counter(
            "agent_comms_web_sse_bytes",
            "Bytes written to SSE streams, by content encoding (deflate: compressed, see docs/web.md).",
            ["encoding"],
            registry=r,
        )
        self.sse_resyncs = Counter(
            "agent_comms_web_sse_resyncs",
            "Times an SSE stream re-read from Postgres by cursor (its live queue overflowed, or it "
            "joined while a read was under way).",
            registry=r,
        )
        self.notifications = Counter(
            "agent_comms_web_notifications", "NOTIFYs received on the LISTEN connection.", registry=r
        )
        self.live_reads = Counter(
            "agent_comms_web_live_reads", "Reads by cursor made by the live fan-out.", registry=r
        )
        self.live_rows = Counter(
            "agent_comms_web_live_rows", "Rows read by the live fan-out (once per process).", registry=r
        )
        self.listening = Gauge(
            "agent_comms_web_listening", "1 while the LISTEN connection is up.", registry=r
        )

"""The consumer's Prometheus metrics, in a registry of their own (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    """`agent_comms_ingest_*` and `agent_comms_consumer_ready`; observability/ alerts on these names."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rows = Counter(
            "agent_comms_ingest_rows",
            "Rows inserted into workflow_comms.agent_messages.",
            ["channel"],
            registry=r,
        )
        self.duplicate_rows = Counter(
            "agent_comms_ingest_duplicate_rows",
            "Messages whose row was already stored (redelivery, backfill first, publisher re-send).",
            ["channel"],
            registry=r,
        )
        self.dead_letters = Counter(
            "agent_comms_ingest_dead_letters",
            "Messages written to the dead-letter table, then acked.",
            registry=r,
        )
        self.messages = Counter(
            "agent_comms_ingest_messages",
            "Messages settled (committed, then acked), by result: stored, duplicate, dead_letter.",
            ["result"],
            registry=r,
        )
        for result in ("stored", "duplicate", "dead_letter"):
            self.messages.labels(result)  # every series from the start, at 0
        self.batches = Counter("agent_comms_ingest_batches", "Batches committed and acked.", registry=r)
        self.lag = Gauge(
            "agent_comms_ingest_lag_messages",
            "Messages in the stream not yet acknowledged by the durable consumer (pending + in flight).",
            registry=r,
        )
        self.ready = Gauge(
            "agent_comms_consumer_ready", "1 when the consumer is bound and Postgres reachable.", registry=r
        )
        self.commit_seconds = Histogram(
            "agent_comms_ingest_commit_seconds",
            "Time to write one batch to Postgres (rows and dead letters, one transaction).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.database_retries = Counter(
            "agent_comms_ingest_database_retries",
            "Batch commits retried because Postgres was unreachable.",
            registry=r,
        )

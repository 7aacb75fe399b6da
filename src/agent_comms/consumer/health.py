"""What /readyz reports: the consumer is bound, Postgres answers, live updates flow (when the web
half is served), and we are not stopping."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_comms.consumer.metrics import IngestMetrics

log = logging.getLogger(__name__)

Fact = Literal["consumer_bound", "database_ok", "migrated", "stopping", "listening"]


@dataclass(slots=True)
class Health:
    """Readiness facts, set by whoever learns them; each change updates the ready gauge."""

    metrics: IngestMetrics
    needs_consumer: bool = True
    """False with --no-ingest: no durable consumer to bind."""
    needs_listening: bool = False
    """True when the web half is served: its LISTEN connection must be up."""
    consumer_bound: bool = False
    database_ok: bool = False
    migrated: bool = False
    stopping: bool = False
    listening: bool = False
    problems: dict[str, str] = field(default_factory=dict)
    """Why each false fact is false, with the fix: what /readyz shows."""

    def __post_init__(self) -> None:
        if not self.problems:
            self.problems.update(
                {"database_ok": "Postgres not reached yet", "migrated": "migrations not checked yet"}
            )
            if self.needs_consumer:
                self.problems["consumer_bound"] = "not bound yet"
            if self.needs_listening:
                self.problems["listening"] = "LISTEN connection not up yet"

    def set(self, fact: Fact, value: bool, problem: str = "") -> None:
        """Set one fact; `problem` says why it is false and how to fix it. Transitions are logged."""
        before = getattr(self, fact)
        setattr(self, fact, value)
        if value or fact == "stopping":
            self.problems.pop(fact, None)
        else:
            self.problems[fact] = problem or "not yet"
        if before != value:
            log.info("readiness_changed", extra={"fact": fact, "value": value, "ready": self.is_ready})
        self.metrics.ready.set(1 if self.is_ready else 0)

    @property
    def is_ready(self) -> bool:
        return (
            (self.consumer_bound or not self.needs_consumer)
            and (self.listening or not self.needs_listening)
            and self.database_ok
            and self.migrated
            and not self.stopping
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ready": self.is_ready,
            "consumer_bound": self.consumer_bound,
            "database_ok": self.database_ok,
            "migrated": self.migrated,
            "stopping": self.stopping,
            "listening": self.listening,
            "problems": dict(self.problems),
        }

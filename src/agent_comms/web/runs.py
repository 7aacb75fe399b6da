"""A run summary row as the API shows it: explicit status, elapsed time, links."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from agent_comms.web.rows import iso

Status = Literal["running", "succeeded", "failed", "stale"]


def run_status(record: dict[str, Any], now: datetime, stale_after_s: float) -> Status:
    """The last turn's outcome when it ended; else running, or stale once silent too long."""
    outcome = record.get("outcome")
    if outcome in ("succeeded", "failed"):
        return "succeeded" if outcome == "succeeded" else "failed"
    if (now - record["last_at"]).total_seconds() > stale_after_s:
        return "stale"
    return "running"


def run_links(ref: str) -> dict[str, str]:
    q = quote(ref, safe="")
    return {
        "page": f"/agents/{q}",
        "summary": f"/api/agents/runs/{q}",
        "messages": f"/api/agents/runs/{q}/messages",
        "events": f"/api/agents/events?runId={q}",
        "transcript_md": f"/api/agents/runs/{q}/transcript.md",
        "transcript_jsonl": f"/api/agents/runs/{q}/transcript.jsonl",
    }


def api_run(record: dict[str, Any], now: datetime, stale_after_s: float) -> dict[str, Any]:
    status = run_status(record, now, stale_after_s)
    end = now if status == "running" else record["last_at"]
    return {
        "workflow_uid": record["workflow_uid"],
        "workflow_name": record["workflow_name"],
        "namespace": record["workflow_namespace"],
        "run_id": record["run_id"],
        "agents": list(record["agents"]),
        "messages": int(record["messages"]),
        "failures": int(record["failures"]),
        "errors": int(record["errors"]),
        "first_at": iso(record["first_at"]),
        "last_at": iso(record["last_at"]),
        "elapsed_s": round(max(0.0, (end - record["first_at"]).total_seconds()), 3),
        "status": status,
        "last_status": record["outcome"],
        "max_id": int(record["max_id"]),
        "links": run_links(record["workflow_uid"]),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One header for a runId that names several workflows: the worst status, sums, the span."""
    order: list[Status] = ["failed", "running", "stale", "succeeded"]
    statuses = [r["status"] for r in runs]
    status = next(s for s in order if s in statuses)
    first = min(r["first_at"] for r in runs)
    last = max(r["last_at"] for r in runs)
    return {
        "status": status,
        "workflows": len(runs),
        "namespaces": sorted({r["namespace"] for r in runs}),
        "agents": sorted({a for r in runs for a in r["agents"]}),
        "messages": sum(r["messages"] for r in runs),
        "failures": sum(r["failures"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "first_at": first,
        "last_at": last,
        "elapsed_s": max(r["elapsed_s"] for r in runs),
    }

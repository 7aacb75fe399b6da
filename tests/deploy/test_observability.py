"""The Grafana dashboard and the alert rules query only metrics that observability/README.md
lists: that list is the contract the code exports."""

from __future__ import annotations

import json

import pytest

from tests.deploy.manifests import REPO_ROOT, go_duration_s, manifest
from tests.deploy.promql import documented_metrics, metric_names, undocumented

README = REPO_ROOT / "observability" / "README.md"
DASHBOARD = REPO_ROOT / "observability" / "grafana-dashboard.json"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels() -> list[dict]:
    flat = []
    for panel in dashboard()["panels"]:
        flat.append(panel)
        flat += panel.get("panels", [])  # panels inside collapsed rows
    return flat


def dashboard_exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]


def rules() -> list[dict]:
    return [r for g in manifest("PrometheusRule", "agent-comms")["spec"]["groups"] for r in g["rules"]]


def test_readme_lists_the_agreed_metrics():
    documented = documented_metrics(README)
    for name in (
        "agent_comms_publish_lines_total",
        "agent_comms_publish_pending_lines",
        "agent_comms_ingest_rows_total",
        "agent_comms_ingest_dead_letters_total",
        "agent_comms_ingest_lag_messages",
        "agent_comms_consumer_ready",
        "agent_comms_web_sse_clients",
        "nats_stream_total_bytes",
        "nats_consumer_num_pending",
    ):
        assert name in documented


def test_metric_name_extraction():
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(agent_comms_ingest_batch_seconds_bucket{job="x"}'
        "[$__rate_interval]))) / on (pod) group_left max(nats_stream_limit_bytes) > bool 1e3"
    )
    assert metric_names(expr) == {"agent_comms_ingest_batch_seconds_bucket", "nats_stream_limit_bytes"}


def test_dashboard_is_a_grafana_dashboard():
    dash = dashboard()
    assert dash["uid"] and dash["title"]
    assert isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    [datasource] = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    for panel in panels():
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == f"${{{datasource['name']}}}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"


def test_dashboard_queries_only_documented_metrics():
    documented = documented_metrics(README)
    for title, expr in dashboard_exprs():
        names = metric_names(expr)
        assert names, f"panel {title!r}: no metric in {expr!r}"
        assert not undocumented(names, documented), (
            f"panel {title!r} uses {sorted(undocumented(names, documented))}"
        )


def test_dashboard_covers_every_agent_comms_metric():
    used = {n for _, expr in dashboard_exprs() for n in metric_names(expr)}
    listed = {n for n in documented_metrics(README) if n.startswith("agent_comms_")}
    shown = {n for n in listed if n in used or any(u.startswith(n + "_") for u in used)}
    assert listed == shown, f"not on the dashboard: {sorted(listed - shown)}"


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r.get("alert", r.get("record")))
def test_alert_queries_only_documented_metrics(rule):
    names = metric_names(rule["expr"])
    assert names, rule["expr"]
    assert not undocumented(names, documented_metrics(README)), sorted(
        undocumented(names, documented_metrics(README))
    )


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r.get("alert", r.get("record")))
def test_alert_has_severity_and_explanation(rule):
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    if "for" in rule:
        assert go_duration_s(rule["for"]) > 0


def test_readme_documents_every_alert():
    text = README.read_text(encoding="utf-8")
    for rule in rules():
        assert f"`{rule['alert']}`" in text, f"{rule['alert']} missing from observability/README.md"


def test_alerts_cover_the_failure_modes():
    used = {n for r in rules() for n in metric_names(r["expr"])}
    for name in (
        "agent_comms_publish_pending_lines",
        "agent_comms_publish_lines_total",
        "agent_comms_ingest_lag_messages",
        "nats_consumer_num_pending",
        "agent_comms_ingest_dead_letters_total",
        "agent_comms_consumer_ready",
        "nats_stream_total_bytes",
    ):
        assert name in used, f"no alert on {name}"


def exported_metrics() -> set[str]:
    """Every series name the code can export: the consumer's, the web half's and the sidecar's."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from agent_comms.consumer.metrics import IngestMetrics
    from agent_comms.publisher.metrics import PublisherCollector
    from agent_comms.publisher.watched import Summary
    from agent_comms.web.metrics import WebMetrics

    registry = CollectorRegistry()
    IngestMetrics(registry)
    WebMetrics(registry)
    registry.register(PublisherCollector(SimpleNamespace(summary=Summary, finished=False)))  # type: ignore[arg-type]
    names = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("", "_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def test_the_code_exports_every_documented_agent_comms_metric():
    documented = {n for n in documented_metrics(README) if n.startswith("agent_comms_")}
    assert documented, "no agent_comms metric documented"
    assert documented - exported_metrics() == set()


def test_every_agent_comms_metric_the_code_exports_is_documented():
    exported = {n for n in exported_metrics() if not n.endswith(("_bucket", "_sum", "_count"))}
    assert undocumented(exported, documented_metrics(README)) == set()

"""jangar-consumer's Deployment, Service and ServiceMonitor fit together and run the consumer
the way DESIGN.md says: probes on /healthz and /readyz at 8080, secrets by reference, non-root."""

from __future__ import annotations

from tests.deploy.manifests import manifest


def deployment() -> dict:
    return manifest("Deployment", "jangar-consumer")


def container() -> dict:
    [c] = deployment()["spec"]["template"]["spec"]["containers"]
    return c


def service() -> dict:
    return manifest("Service", "jangar-consumer")


def env() -> dict[str, dict]:
    return {e["name"]: e for e in container()["env"]}


def test_runs_agent_comms_consume_on_8080():
    c = container()
    assert c["args"] == ["consume", "--http-host", "0.0.0.0", "--http-port", "8080"]
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in c["ports"]


def test_liveness_is_healthz_and_readiness_is_readyz():
    c = container()
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_secrets_are_referenced_never_written():
    e = env()
    for name in ("DATABASE_URL", "NATS_USER", "NATS_PASSWORD", "AGENT_COMMS_API_TOKEN"):
        assert "value" not in e[name] and e[name]["valueFrom"]["secretKeyRef"]["name"], name
    assert e["NATS_URL"]["value"].startswith("tls://")
    mounts = [m["mountPath"] for m in container()["volumeMounts"]]
    assert any(e["NATS_TLS_CA_FILE"]["value"].startswith(m + "/") for m in mounts)


def test_runs_non_root_on_a_read_only_root_file_system():
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    ctx = container()["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert "/tmp" in [m["mountPath"] for m in container()["volumeMounts"]]


def test_stops_within_a_bounded_grace_period_with_resources_set():
    pod = deployment()["spec"]["template"]["spec"]
    assert 10 <= pod["terminationGracePeriodSeconds"] <= 60
    resources = container()["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]


def test_service_selects_the_pods_and_targets_the_http_port():
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    selector = service()["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    assert deployment()["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    [port] = service()["spec"]["ports"]
    assert port["targetPort"] == "http" and port["name"] == "http"


def test_servicemonitor_scrapes_metrics_from_the_service():
    monitor = manifest("ServiceMonitor", "jangar-consumer")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service()["metadata"]["labels"].items()
    [endpoint] = monitor["endpoints"]
    assert endpoint["port"] == service()["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"

"""Every deployment YAML parses, and every Kubernetes object validates strictly against the
upstream schema of its kind: the CRDs in shared/schemas, made to reject unknown fields, and
the Kubernetes API schemas for core kinds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.deploy.manifests import (
    CORE_KINDS,
    KUBERNETES_VERSION,
    REPO_ROOT,
    SCHEMAS_BY_KIND,
    Manifest,
    load_documents,
    manifest,
    manifests,
    recorded_sha256,
    schemas_dir,
    sha256_of,
    upstream_crd,
    yaml_files,
)

ALL_MANIFESTS = manifests()


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:  # pragma: no cover - an environment problem, reported as a failure
        pytest.fail(
            "kubernetes-validate is not installed: pip install 'kubernetes-validate>=1.31'", pytrace=False
        )
    return kubernetes_validate


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_yaml_file_parses(path):
    assert load_documents(path), f"{path} holds no YAML document"


def test_every_deployment_folder_has_manifests():
    folders = {m.path.split("/")[0] for m in ALL_MANIFESTS}
    assert folders == {"nats", "jangar-consumer", "workflow-templates", "observability"}


def test_schema_copies_match_recorded_sha256():
    recorded = recorded_sha256()
    used = {relpath for schemas in SCHEMAS_BY_KIND.values() for relpath, _ in schemas}
    for relpath in [*sorted(used), "nats-helm/values.yaml"]:
        assert relpath in recorded, f"{relpath}: no sha256 recorded in shared/schemas/README.md"
        assert sha256_of(schemas_dir() / relpath) == recorded[relpath], (
            f"{relpath} differs from the upstream copy"
        )


def test_every_kind_has_a_schema():
    unknown = {m.kind for m in ALL_MANIFESTS} - set(SCHEMAS_BY_KIND) - CORE_KINDS
    assert not unknown, f"no schema to validate {sorted(unknown)} against: add it to SCHEMAS_BY_KIND"


CRD_CASES = [
    pytest.param(m, relpath, version, id=f"{m}@{relpath.split('/')[-2] if 'argo' in relpath else version}")
    for m in ALL_MANIFESTS
    for relpath, version in SCHEMAS_BY_KIND.get(m.kind, [])
]


@pytest.mark.parametrize(("item", "relpath", "version"), CRD_CASES)
def test_custom_resource_validates_strictly(item: Manifest, relpath: str, version: str):
    schema = upstream_crd(relpath, item.kind, version)
    errors = schema.errors(item.doc)
    assert not errors, f"{item} against {relpath} ({schema.api_version}):\n" + "\n".join(errors)


@pytest.mark.parametrize("item", [m for m in ALL_MANIFESTS if m.kind in CORE_KINDS], ids=str)
def test_core_object_validates_strictly(item: Manifest):
    kv = _kubernetes_validate()
    try:
        kv.validate(item.doc, KUBERNETES_VERSION, strict=True)
    except kv.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "<root>"
        pytest.fail(f"{item} (Kubernetes {KUBERNETES_VERSION}): {where}: {e.message}", pytrace=False)


# --- the strictness is real: a misspelled field fails, where the upstream schema alone passes ---


def _with(doc: dict[str, Any], path: list[str | int], key: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    node: Any = changed
    for step in path:
        node = node[step]
    node[key] = value
    return changed


TYPOS = [
    pytest.param(
        "Consumer",
        "jangar-agent-comms",
        ["spec"],
        "ackPolcy",
        "explicit",
        "nack/crds.yml",
        "v1beta2",
        id="consumer-spec",
    ),
    pytest.param(
        "Stream", "agent-comms", ["spec"], "maxAges", "168h", "nack/crds.yml", "v1beta2", id="stream-spec"
    ),
    pytest.param(
        "Stream",
        "agent-comms",
        ["metadata"],
        "lables",
        {"a": "b"},
        "nack/crds.yml",
        "v1beta2",
        id="stream-metadata",
    ),
    pytest.param(
        "WorkflowTemplate",
        "agent-comms-sidecar",
        ["spec", "templates", 0],
        "sidecar",
        [],
        "argo-workflows/v3.7.18/argoproj.io_workflowtemplates.yaml",
        "v1alpha1",
        id="argo-3.7-template",
    ),
    pytest.param(
        "WorkflowTemplate",
        "agent-comms-sidecar",
        ["spec", "templates", 0, "sidecars", 0, "env", 0],
        "valueForm",
        {},
        "argo-workflows/v4.1.2/argoproj.io_workflowtemplates.yaml",
        "v1alpha1",
        id="argo-4.1-sidecar-env",
    ),
    pytest.param(
        "WorkflowTemplate",
        "codex-implementation",
        ["spec", "templates", 1, "steps", 0, 0],
        "continueOn_",
        {},
        "argo-workflows/v4.1.2/argoproj.io_workflowtemplates.yaml",
        "v1alpha1",
        id="argo-4.1-step",
    ),
    pytest.param(
        "PrometheusRule",
        "agent-comms",
        ["spec", "groups", 0, "rules", 0],
        "expresion",
        "up",
        "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml",
        "v1",
        id="prometheus-rule",
    ),
    pytest.param(
        "ServiceMonitor",
        "jangar-consumer",
        ["spec", "endpoints", 0],
        "pth",
        "/metrics",
        "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
        "v1",
        id="servicemonitor",
    ),
]


@pytest.mark.parametrize(("kind", "name", "path", "typo", "value", "relpath", "version"), TYPOS)
def test_misspelled_field_is_rejected(kind, name, path, typo, value, relpath, version):
    schema = upstream_crd(relpath, kind, version)
    broken = _with(manifest(kind, name), path, typo, value)
    errors = schema.errors(broken)
    assert any(f"'{typo}' was unexpected" in e for e in errors), errors


def test_upstream_schema_alone_would_accept_the_typo():
    """Why strictify exists: the CRD schema as shipped lets a misspelled field through."""
    from jsonschema import Draft7Validator

    from tests.deploy.manifests import crds_in

    [crd] = [c for c in crds_in(schemas_dir() / "nack/crds.yml") if c["spec"]["names"]["kind"] == "Consumer"]
    [v1beta2] = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    broken = _with(manifest("Consumer", "jangar-agent-comms"), ["spec"], "ackPolcy", "explicit")
    assert not list(Draft7Validator(v1beta2["schema"]["openAPIV3Schema"]).iter_errors(broken))


def test_misspelled_core_field_is_rejected():
    kv = _kubernetes_validate()
    deployment = manifest("Deployment", "jangar-consumer")
    broken = _with(deployment, ["spec", "template", "spec", "containers", 0], "livenessProbes", {})
    with pytest.raises(kv.ValidationError, match="livenessProbes"):
        kv.validate(broken, KUBERNETES_VERSION, strict=True)

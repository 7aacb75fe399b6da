"""The deployment artifacts and the upstream schemas they are checked against.

Schemas live outside the repo, in `<repo>/../shared/schemas` (the CI clone has `shared/` beside
the repository); AGENT_COMMS_SCHEMAS_DIR points elsewhere. A missing folder fails the tests that
need it with the path that was tried: a schema check that skips silently checks nothing.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from jsonschema import Draft7Validator

REPO_ROOT: Final = Path(__file__).resolve().parents[2]

# Folders whose every YAML file is a Kubernetes manifest (nats/values.yaml is Helm values).
MANIFEST_DIRS: Final = ("nats", "jangar-consumer", "workflow-templates", "observability")
NOT_MANIFESTS: Final = frozenset({"nats/values.yaml"})

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def schemas_dir() -> Path:
    """The shared schema folder, or a test failure that says where it was looked for."""
    configured = os.environ.get("AGENT_COMMS_SCHEMAS_DIR")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "schemas"
    if not (path / "README.md").is_file():
        pytest.fail(
            f"upstream schemas not found at {path}: the deploy tests need shared/schemas beside "
            "the repository (<repo>/../shared/schemas), or AGENT_COMMS_SCHEMAS_DIR set to it",
            pytrace=False,
        )
    return path


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)


def load_documents(path: Path) -> list[Any]:
    return [d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=Loader) if d is not None]


def yaml_files() -> list[Path]:
    """Every YAML file in the deployment folders, manifests and Helm values alike."""
    files: list[Path] = []
    for folder in MANIFEST_DIRS:
        files += sorted((REPO_ROOT / folder).rglob("*.yaml")) + sorted((REPO_ROOT / folder).rglob("*.yml"))
    return files


@dataclass(frozen=True)
class Manifest:
    path: str  # relative to the repo root
    index: int  # position in a multi-document file
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind"))

    @property
    def name(self) -> str:
        return str(self.doc.get("metadata", {}).get("name"))

    def __str__(self) -> str:
        return f"{self.path}#{self.index}:{self.kind}/{self.name}"


def manifests() -> list[Manifest]:
    found: list[Manifest] = []
    for path in yaml_files():
        rel = path.relative_to(REPO_ROOT).as_posix()
        if rel in NOT_MANIFESTS:
            continue
        for i, doc in enumerate(load_documents(path)):
            found.append(Manifest(rel, i, doc))
    return found


def manifest(kind: str, name: str) -> dict[str, Any]:
    matches = [m.doc for m in manifests() if m.kind == kind and m.name == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


# --- strict CRD schemas --------------------------------------------------------------------

# What the API server accepts in metadata of an object we author. Kubernetes validates
# metadata itself (CRD schemas leave it open), so this stands in for ObjectMeta: a misspelled
# `lables` must fail here as it would be pruned there.
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
OBJECT_META: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

_SCHEMA_MAPS: Final = ("properties", "patternProperties", "definitions", "$defs")
_SUBSCHEMAS: Final = ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf")


def strictify(node: Any) -> Any:
    """A structural (OpenAPI v3) CRD schema as JSON Schema that rejects unknown fields.

    Kubernetes prunes fields a structural schema does not declare, so a misspelled field is
    silently dropped, never an error. Here it is an error: every object that declares
    `properties`, or declares nothing at all (an empty marker object such as `archive.none`),
    gets `additionalProperties: false`, unless it is `x-kubernetes-preserve-unknown-fields`
    (Argo's `inline`, `withItems`, `plugin`) or already says what extra keys may hold (a map).
    `nullable: true` becomes an explicit null type.
    """
    if isinstance(node, list):
        return [strictify(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strictify(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMAS and isinstance(value, dict | list):
            out[key] = strictify(value)
        elif key == "pattern" and isinstance(value, str):
            out[key] = _python_pattern(value)
        else:  # keywords whose values are data, not schemas: default, enum, x-kubernetes-*
            out[key] = value
    if node.get("nullable") is True and isinstance(node.get("type"), str):
        out["type"] = [node["type"], "null"]
    is_object = "properties" in node or node.get("type") == "object"
    if (
        is_object
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _python_pattern(pattern: str) -> str:
    """A Go (RE2) pattern for Python's re: inline flags such as the operator's `^(?i)(abort|warn)?$`
    must lead the expression in Python 3.11+."""
    if "(?i)" in pattern and not pattern.startswith("(?i)"):
        return "(?i)" + pattern.replace("(?i)", "")
    return pattern


@dataclass(frozen=True)
class CrdSchema:
    """One served version of one CRD, as a strict validator for whole objects."""

    api_version: str
    kind: str
    schema: dict[str, Any]

    @functools.cached_property
    def validator(self) -> Draft7Validator:
        Draft7Validator.check_schema(self.schema)
        return Draft7Validator(self.schema)

    def errors(self, doc: dict[str, Any]) -> list[str]:
        """Every violation, each as `path: message`, sorted for stable test output."""
        found = []
        for error in self.validator.iter_errors(doc):
            where = "/".join(str(p) for p in error.absolute_path) or "<root>"
            found.append(f"{where}: {error.message[:300]}")
        return sorted(found)


def crd_schema(crd: dict[str, Any], version: str) -> CrdSchema:
    """The strict whole-object schema of `crd` at `version` (apiVersion, kind, metadata, spec)."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert served.get("served", True), f"{kind} {group}/{version} is not served by this CRD"
    schema = strictify(copy.deepcopy(served["schema"]["openAPIV3Schema"]))
    props = schema.setdefault("properties", {})
    # NACK's schemas omit the root fields; Argo's and the operator's leave metadata open.
    props["apiVersion"] = {"const": f"{group}/{version}"}
    props["kind"] = {"const": kind}
    props["metadata"] = OBJECT_META
    schema["additionalProperties"] = False
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    return CrdSchema(f"{group}/{version}", kind, schema)


def crds_in(path: Path) -> Iterator[dict[str, Any]]:
    for doc in load_documents(path):
        if doc.get("kind") == "CustomResourceDefinition":
            yield doc


@functools.cache
def upstream_crd(relpath: str, kind: str, version: str) -> CrdSchema:
    path = schemas_dir() / relpath
    [crd] = [c for c in crds_in(path) if c["spec"]["names"]["kind"] == kind]
    return crd_schema(crd, version)


# Which upstream schema(s) each kind we author must satisfy. WorkflowTemplates must work on
# both Argo lines the clusters run, so they are checked against both CRDs.
SCHEMAS_BY_KIND: Final[dict[str, list[tuple[str, str]]]] = {
    "Stream": [("nack/crds.yml", "v1beta2")],
    "Consumer": [("nack/crds.yml", "v1beta2")],
    "Account": [("nack/crds.yml", "v1beta2")],
    "WorkflowTemplate": [
        ("argo-workflows/v3.7.18/argoproj.io_workflowtemplates.yaml", "v1alpha1"),
        ("argo-workflows/v4.1.2/argoproj.io_workflowtemplates.yaml", "v1alpha1"),
    ],
    "PrometheusRule": [("prometheus-operator/monitoring.coreos.com_prometheusrules.yaml", "v1")],
    "ServiceMonitor": [("prometheus-operator/monitoring.coreos.com_servicemonitors.yaml", "v1")],
    "PodMonitor": [("prometheus-operator/monitoring.coreos.com_podmonitors.yaml", "v1")],
}

# Core Kubernetes kinds have no CRD; the kubernetes-validate wheel ships their strict schemas.
CORE_KINDS: Final = frozenset({"Deployment", "Service"})
KUBERNETES_VERSION: Final = "1.31.0"


def recorded_sha256() -> dict[str, str]:
    """The sha256 of each schema file as listed in shared/schemas/README.md."""
    text = (schemas_dir() / "README.md").read_text(encoding="utf-8")
    return {m[2]: m[1] for m in re.finditer(r"^([0-9a-f]{64})  \./(\S+)$", text, re.M)}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- small parsers ---------------------------------------------------------------------------

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS_S: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_s(text: str) -> float:
    """Seconds in a Go time.ParseDuration string ("168h", "2m", "1m30s"); no "d" unit exists."""
    parts = _GO_DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a Go duration: {text!r}"
    return sum(float(n) * _GO_UNITS_S[u] for n, u in parts)


_SIZE = re.compile(r"^(\d+)\s*([KMGT]i?B?|[kmgt]i?b?)?$")


def size_bytes(text: str | int) -> int:
    """Bytes in a NATS or Kubernetes size ("1MB", "16Gi", "20Gi"): NATS's MB and GB are binary."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text.strip())
    assert match, f"not a size: {text!r}"
    number, unit = int(match[1]), (match[2] or "").upper()
    if unit in ("", "B"):
        return number
    power = "KMGT".index(unit[0]) + 1
    # NATS reads "1MB" as 1024*1024 (conf parser), Kubernetes "Mi" likewise; plain "M" in
    # NATS is decimal, which nothing here uses.
    assert unit.endswith(("I", "IB", "B")), f"decimal size unit in {text!r}: use MB/GB or Mi/Gi"
    return number * 1024**power

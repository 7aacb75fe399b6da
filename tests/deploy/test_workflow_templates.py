"""The Argo WorkflowTemplates wire the publisher sidecar and the backfill exit handler as
DESIGN.md says: identity from Argo variables, a drain that fits the grace period, an exit
handler that runs the backfill over the agent's files and can never change the result."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import manifests

TEMPLATES = {m.name: m.doc for m in manifests() if m.kind == "WorkflowTemplate"}
AGENT_WORKFLOWS = {"codex-implementation": "implementation", "codex-research": "research"}

# DESIGN.md: the run's identity, each from its Argo variable.
IDENTITY = {
    "WORKFLOW_UID": "{{workflow.uid}}",
    "WORKFLOW_NAME": "{{workflow.name}}",
    "WORKFLOW_NAMESPACE": "{{workflow.namespace}}",
    "STEP_ID": "{{pod.name}}",
    "AGENT_ID": "{{inputs.parameters.agent-id}}",
    "STAGE": "{{inputs.parameters.stage}}",
    "RUN_ID": "{{inputs.parameters.run-id}}",
}


def template(workflow_template: str, name: str) -> dict[str, Any]:
    [found] = [t for t in TEMPLATES[workflow_template]["spec"]["templates"] if t["name"] == name]
    return found


def agent_template() -> dict[str, Any]:
    return template("agent-comms-sidecar", "codex-agent")


def publisher() -> dict[str, Any]:
    [sidecar] = [s for s in agent_template()["sidecars"] if s["name"] == "agent-comms-publisher"]
    return sidecar


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_expected_templates_exist():
    assert set(TEMPLATES) == {"agent-comms-sidecar", "codex-implementation", "codex-research"}


def test_publisher_is_a_sidecar_running_agent_comms_publish():
    sidecar = publisher()
    assert sidecar["command"] == ["agent-comms"]
    assert sidecar["args"][0] == "publish"


def test_publisher_env_carries_the_runs_identity():
    env = env_of(publisher())
    for name, expression in IDENTITY.items():
        assert env.get(name, {}).get("value") == expression, f"{name} must be {expression}"


def test_publisher_nats_credentials_come_from_secrets():
    env = env_of(publisher())
    assert env["NATS_URL"]["value"].startswith(("tls://", "{{inputs.parameters."))
    for name in ("NATS_USER", "NATS_PASSWORD"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"], name
    ca_file = env["NATS_TLS_CA_FILE"]["value"]
    mounts = [m["mountPath"] for m in publisher()["volumeMounts"]]
    assert any(ca_file.startswith(m + "/") for m in mounts), f"{ca_file} is not in a mounted volume"


def test_publisher_and_agent_share_an_emptydir_workspace():
    tmpl = agent_template()
    watch_dir = flag(publisher()["args"], "--watch-dir")
    volumes = {v["name"]: v for v in tmpl["volumes"]}
    agent_mounts = {m["mountPath"]: m["name"] for m in tmpl["container"]["volumeMounts"]}
    publisher_mounts = {m["mountPath"]: m for m in publisher()["volumeMounts"]}
    assert watch_dir in agent_mounts and watch_dir in publisher_mounts
    assert publisher_mounts[watch_dir]["name"] == agent_mounts[watch_dir]
    assert not publisher_mounts[watch_dir].get("readOnly"), "the publisher writes .agent-comms/ there"
    assert "emptyDir" in volumes[agent_mounts[watch_dir]]


def test_agent_writes_the_files_the_publisher_watches():
    script = agent_template()["container"]["args"][0]
    assert '"/workspace/.codex-${STAGE}-events.jsonl"' in script
    assert '"/workspace/.codex-${STAGE}-agent.log"' in script
    assert re.search(r"^\s*exec codex exec --json", script, re.M), "codex's exit code must be the step's"


def test_drain_timeout_fits_in_the_termination_grace_period():
    patch = yaml.safe_load(agent_template()["podSpecPatch"])
    grace_s = patch["terminationGracePeriodSeconds"]
    drain_s = float(flag(publisher()["args"], "--drain-timeout"))
    assert grace_s == 30
    assert drain_s == 25
    assert drain_s < grace_s


def test_agent_files_leave_the_pod_as_optional_global_artifacts():
    outputs = agent_template()["outputs"]["artifacts"]
    paths = {a["path"] for a in outputs}
    assert paths == {
        "/workspace/.codex-{{inputs.parameters.stage}}-events.jsonl",
        "/workspace/.codex-{{inputs.parameters.stage}}-agent.log",
        "/workspace/.agent-comms",
        "/workspace/.agent-comms-step-id",
    }
    for artifact in outputs:
        assert artifact["optional"] is True, (
            f"{artifact['name']}: a missing file must not fail the agent step"
        )
        assert artifact["globalName"].startswith("agent-comms-")


def test_backfill_restores_the_files_under_their_original_names():
    backfill = template("agent-comms-sidecar", "backfill")
    outputs = {a["name"]: a["path"] for a in agent_template()["outputs"]["artifacts"]}
    inputs = {a["name"]: a for a in backfill["inputs"]["artifacts"]}
    assert {name: a["path"] for name, a in inputs.items()} == outputs
    assert all(a["optional"] is True for a in inputs.values())


def test_backfill_runs_agent_comms_backfill_over_the_workspace():
    backfill = template("agent-comms-sidecar", "backfill")
    script = backfill["container"]["args"][0]
    [line] = [ln for ln in script.splitlines() if "agent-comms backfill" in ln]
    words = shlex.split(line)
    assert words[:3] == ["exec", "agent-comms", "backfill"]
    assert flag(words, "--from") == "/workspace"
    mounts = {m["mountPath"] for m in backfill["container"]["volumeMounts"]}
    assert "/workspace" in mounts, "an always-present /workspace, even when no artifact exists"
    env = env_of(backfill["container"])
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
    for name in ("WORKFLOW_UID", "WORKFLOW_NAME", "WORKFLOW_NAMESPACE"):
        assert env[name]["value"] == IDENTITY[name]
    assert "STEP_ID" not in env, "this pod's name is not the step that wrote the files"


def test_exit_handler_passes_every_global_artifact_optionally():
    [[step]] = template("agent-comms-sidecar", "exit-handler")["steps"]
    globals_ = {a["name"]: a["globalName"] for a in agent_template()["outputs"]["artifacts"]}
    passed = {a["name"]: a for a in step["arguments"]["artifacts"]}
    assert set(passed) == set(globals_)
    for name, artifact in passed.items():
        assert artifact["from"] == f"{{{{workflow.outputs.artifacts.{globals_[name]}}}}}"
        # An unresolvable optional artifact argument is skipped; a required one errors the node.
        assert artifact["optional"] is True


def continues_on_everything(step: dict[str, Any]) -> bool:
    return step.get("continueOn") == {"failed": True, "error": True}


def exit_path(workflow_template: str) -> list[tuple[str, dict[str, Any]]]:
    """(workflow template, step) pairs from spec.onExit down to the backfill container."""
    path = []
    current, name = workflow_template, TEMPLATES[workflow_template]["spec"]["onExit"]
    while True:
        tmpl = template(current, name)
        if "container" in tmpl:
            return path
        [[step]] = tmpl["steps"]
        path.append((current, step))
        if "templateRef" in step:
            current, name = step["templateRef"]["name"], step["templateRef"]["template"]
        else:
            name = step["template"]


@pytest.mark.parametrize(("name", "stage"), AGENT_WORKFLOWS.items())
def test_exit_handler_runs_the_backfill_and_cannot_fail_the_workflow(name, stage):
    path = exit_path(name)
    assert path, f"{name}: onExit reaches no step"
    for owner, step in path:
        assert continues_on_everything(step), f"{owner}/{step['name']}: continueOn failed and error expected"
    last_owner, last = path[-1]
    assert (last_owner, last["template"]) == ("agent-comms-sidecar", "backfill")
    first_args = {p["name"]: p["value"] for p in path[0][1]["arguments"]["parameters"]}
    assert first_args["stage"] == stage


@pytest.mark.parametrize(("name", "stage"), AGENT_WORKFLOWS.items())
def test_agent_step_uses_the_reusable_sidecar_template(name, stage):
    [[step]] = template(name, TEMPLATES[name]["spec"]["entrypoint"])["steps"]
    assert step["templateRef"] == {"name": "agent-comms-sidecar", "template": "codex-agent"}
    args = {p["name"]: p["value"] for p in step["arguments"]["parameters"]}
    assert args["stage"] == stage == args["agent-id"]
    assert args["run-id"] == "{{workflow.parameters.run-id}}"


# --- references resolve: parameters declared, templateRefs found, required inputs supplied ---

_INPUT_REF = re.compile(r"\{\{\s*inputs\.parameters\.([\w-]+)\s*\}\}")
_WORKFLOW_PARAM_REF = re.compile(r"\{\{\s*workflow\.parameters\.([\w-]+)\s*\}\}")


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


ALL_TEMPLATES = [(wt, t) for wt, doc in TEMPLATES.items() for t in doc["spec"]["templates"]]


@pytest.mark.parametrize(
    ("owner", "tmpl"), ALL_TEMPLATES, ids=lambda x: x if isinstance(x, str) else x["name"]
)
def test_every_input_parameter_reference_is_declared(owner, tmpl):
    declared = {p["name"] for p in tmpl.get("inputs", {}).get("parameters", [])}
    body = {k: v for k, v in tmpl.items() if k != "inputs"}
    used = {m for s in strings(body) for m in _INPUT_REF.findall(s)}
    # A step's arguments are evaluated in the calling template, so they count as its uses.
    assert used <= declared, f"{owner}/{tmpl['name']} uses undeclared inputs {sorted(used - declared)}"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_workflow_parameter_reference_is_declared(name):
    spec = TEMPLATES[name]["spec"]
    declared = {p["name"] for p in spec.get("arguments", {}).get("parameters", [])}
    used = {m for s in strings(spec["templates"]) for m in _WORKFLOW_PARAM_REF.findall(s)}
    assert used <= declared, f"{name} uses undeclared workflow parameters {sorted(used - declared)}"


STEPS = [
    (owner, tmpl["name"], step)
    for owner, tmpl in ALL_TEMPLATES
    for group in tmpl.get("steps", [])
    for step in group
]


@pytest.mark.parametrize(
    ("owner", "caller", "step"), STEPS, ids=lambda x: x if isinstance(x, str) else x["name"]
)
def test_every_step_reaches_a_template_with_the_inputs_it_needs(owner, caller, step):
    if "templateRef" in step:
        target_owner, target_name = step["templateRef"]["name"], step["templateRef"]["template"]
    else:
        target_owner, target_name = owner, step["template"]
    assert target_owner in TEMPLATES, f"{owner}/{caller}: no WorkflowTemplate {target_owner}"
    target = template(target_owner, target_name)
    inputs = target.get("inputs", {})
    given = {p["name"] for p in step.get("arguments", {}).get("parameters", [])}
    declared = {p["name"] for p in inputs.get("parameters", [])}
    required = {p["name"] for p in inputs.get("parameters", []) if "default" not in p and "value" not in p}
    assert given <= declared, (
        f"{owner}/{caller}/{step['name']}: unknown parameters {sorted(given - declared)}"
    )
    assert required <= given, (
        f"{owner}/{caller}/{step['name']}: missing parameters {sorted(required - given)}"
    )
    artifacts = {a["name"] for a in step.get("arguments", {}).get("artifacts", [])}
    assert artifacts <= {a["name"] for a in inputs.get("artifacts", [])}


@pytest.mark.parametrize("name", sorted(AGENT_WORKFLOWS))
def test_entrypoint_and_on_exit_exist(name):
    spec = TEMPLATES[name]["spec"]
    names = {t["name"] for t in spec["templates"]}
    assert spec["entrypoint"] in names and spec["onExit"] in names


# --- the two shell scripts, run for real with a stand-in codex ------------------------------------

FAKE_CODEX = """#!/bin/sh
echo "codex args: $*" >&2
echo '{"type":"thread.started"}'
exit 3
"""


def run_script(script: str, workspace: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    text = script.replace("/workspace", str(workspace))
    return subprocess.run(["/bin/sh", "-c", text], env=env, capture_output=True, text=True, timeout=30)


def test_agent_script_writes_the_files_and_keeps_codexs_exit_code(tmp_path: Path):
    bin_dir, workspace = tmp_path / "bin", tmp_path / "workspace"
    bin_dir.mkdir()
    workspace.mkdir()
    (bin_dir / "codex").write_text(FAKE_CODEX)
    (bin_dir / "codex").chmod(0o755)
    prompt = 'fix "it"; touch injected $(touch injected2)'
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STAGE": "research",
        "STEP_ID": "wf-abc-123",
        "PROMPT": prompt,
        "SANDBOX": "read-only",
        "REPOSITORY": "",
        "REVISION": "main",
    }
    result = run_script(agent_template()["container"]["args"][0], workspace, env)
    assert result.returncode == 3, result.stderr
    assert (workspace / ".codex-research-events.jsonl").read_text() == '{"type":"thread.started"}\n'
    log = (workspace / ".codex-research-agent.log").read_text()
    assert log.endswith(f"--skip-git-repo-check {prompt}\n"), log
    assert (workspace / ".agent-comms-step-id").read_text() == "wf-abc-123\n"
    assert not list(tmp_path.rglob("injected*")), "the prompt was run as shell"


@pytest.mark.parametrize("has_file", [True, False])
def test_backfill_script_takes_the_agent_pods_step_id(tmp_path: Path, has_file: bool):
    if has_file:
        (tmp_path / ".agent-comms-step-id").write_text("wf-abc-123\n")
    script = template("agent-comms-sidecar", "backfill")["container"]["args"][0]
    assert "exec agent-comms backfill --from /workspace" in script
    script = script.replace("exec agent-comms backfill --from /workspace", "exec env")
    result = run_script(script, tmp_path, {"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    step_ids = [line for line in result.stdout.splitlines() if line.startswith("STEP_ID=")]
    assert step_ids == (["STEP_ID=wf-abc-123"] if has_file else [])

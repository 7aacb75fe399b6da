"""Running the real `agent-comms publish` as a process, the way the pod runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agent_comms.core.lines import LineSplitter
from agent_comms.core.message import message_id

IDENTITY = {
    "WORKFLOW_UID": "uid-1234",
    "WORKFLOW_NAME": "codex-impl-abc",
    "WORKFLOW_NAMESPACE": "agents",
    "STEP_ID": "codex-impl-abc-step-1",
}

FAST = [
    "--poll-interval",
    "0.1",
    "--ack-timeout",
    "1",
    "--retry-max-wait",
    "0.5",
    "--checkpoint-interval",
    "0.05",
]


@dataclass
class PublisherProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    def terminate(self, timeout_s: float = 60) -> tuple[int, dict[str, Any], float]:
        """SIGTERM; returns (exit code, the JSON summary on stdout, seconds from signal to exit)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s, t0)

    def wait(self, timeout_s: float = 60, t0: float | None = None) -> tuple[int, dict[str, Any], float]:
        t0 = t0 or time.monotonic()
        out, _ = self.proc.communicate(timeout=timeout_s)
        took = time.monotonic() - t0
        lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
        summary = orjson.loads(lines[-1]) if lines else {}
        return self.proc.returncode, summary, took

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_publisher(
    watch_dir: Path, nats_url: str, *args: str, env: dict[str, str] | None = None, log_dir: Path | None = None
) -> PublisherProcess:
    log_dir = log_dir or watch_dir.parent
    log_path = log_dir / f"publisher-{time.monotonic_ns()}.log"
    full_env = {**os.environ, **IDENTITY, "NATS_URL": nats_url, **(env or {})}
    cmd = [sys.executable, "-m", "agent_comms", "publish", "--watch-dir", str(watch_dir), *FAST, *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=full_env)
    return PublisherProcess(proc, log_path)


def wait_started(pub: PublisherProcess, timeout_s: float = 20) -> PublisherProcess:
    """Until the publisher logged `publisher_started` (its watcher runs): a readiness signal."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if '"publisher_started"' in pub.log():
            return pub
        if pub.proc.poll() is not None:
            raise AssertionError(f"the publisher exited with {pub.proc.returncode}: {pub.log()[-2000:]}")
        time.sleep(0.02)
    raise AssertionError("the publisher did not start")


def expected_ids(
    path: Path, step_id: str = IDENTITY["STEP_ID"], uid: str = IDENTITY["WORKFLOW_UID"]
) -> list[str]:
    """The message ids of every physical line of a file, computed independently of the publisher."""
    splitter = LineSplitter(step_id, max_line_bytes=1 << 30)
    lines = splitter.feed(path.read_bytes())
    last = splitter.finish()
    if last is not None:
        lines.append(last)
    return [message_id(uid, path.name, ln.number, ln.digest) for ln in lines]

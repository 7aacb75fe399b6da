"""`make run` (`agent-comms demo`) end to end, fast: the recorded run through every real part."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "codex-run"


def test_demo_replays_the_recorded_run_through_every_part(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NATS_URL")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_comms",
            "demo",
            "--no-serve",
            "--rate",
            "500",
            "--workdir",
            str(tmp_path / "run"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    lines = sum(len(f.read_bytes().splitlines()) for f in EXAMPLE.iterdir() if f.is_file())
    assert out.index("Watch it live: http://127.0.0.1:") < out.index("[1/7]")  # the URL comes first
    assert f"{lines} lines read, {lines} published, 0 pending" in out
    assert (
        f"backfill exit step: {lines} lines, {2 * lines} rows, 0 inserted, {2 * lines} already present" in out
    )
    assert f"Read back from Postgres (workflow_comms.agent_messages): {2 * lines} rows" in out
    total = re.search(r"^\s+total\s+(\d+)\s+(\d+)$", out, re.MULTILINE)
    assert total is not None and total.groups() == (str(lines), str(lines))

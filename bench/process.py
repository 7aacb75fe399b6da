"""`agent-comms publish` as a process, the way the pod runs it: throughput, peak RSS, latency."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats
import orjson
from baselines import IDENTITY

EVENTS_NAME = ".codex-implementation-events.jsonl"
MAX_RUN_BYTES = "64G"
"""Passed as --max-run-bytes: the default 256M stops live publishing before the 100k file ends."""


def publisher_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "AGENT_COMMS_", "WORKFLOW_"))}
    return {**env, **IDENTITY, "NATS_URL": url, "PYTHONUNBUFFERED": "1"}


def cli_cmd(*args: str) -> list[str]:
    """`agent-comms ARGS...` through the console script, as the images run it."""
    script = Path(sys.executable).parent / "agent-comms"
    prog = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from agent_comms.cli import main; main()"]
    )
    return [*prog, *args]


def publisher_cmd(watch_dir: Path, *args: str) -> list[str]:
    return cli_cmd("publish", "--watch-dir", str(watch_dir), *args)


def vm_hwm_mb(pid: int) -> float:
    """VmHWM (the high-water mark of resident memory) of a live process, in MiB; 0 when gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def last_json(path: Path) -> dict[str, Any]:
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("{")]
    doc = orjson.loads(lines[-1]) if lines else {}
    return {k: v for k, v in doc.items() if k != "files"}


def run_once(watch_dir: Path, url: str, workdir: Path, label: str) -> dict[str, Any]:
    """`agent-comms publish --once`: wall time from spawn to exit, peak RSS, CPU, its summary."""
    cmd = publisher_cmd(watch_dir, "--once", "--max-run-bytes", MAX_RUN_BYTES)
    result = run_timed(cmd, publisher_env(url), workdir, label)
    result["publisher_cpu_s"] = result.pop("cpu_s")
    return result


def run_timed(cmd: list[str], env: dict[str, str], workdir: Path, label: str) -> dict[str, Any]:
    """A command run to its exit: wall time from spawn to exit, peak RSS, CPU, its JSON summary.

    Peak RSS is the child's VmHWM, read every 20 ms until it exits (a high-water mark, so a read
    after a peak still sees it). Not `wait4()`'s ru_maxrss: Linux carries the forking parent's
    resident size into the child's maximum, and this parent holds every message.
    """
    out_path, err_path = workdir / f"{label}.stdout", workdir / f"{label}.stderr"
    hwm = 0.0
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                hwm = max(hwm, vm_hwm_mb(proc.pid))
                time.sleep(0.02)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        took = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit_code": proc.returncode,
        "seconds": took,
        "max_rss_mb": hwm,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "summary": last_json(out_path),
        "stderr_tail": err_path.read_text(errors="replace")[-2000:] if proc.returncode else "",
    }


def import_startup_s(repeat: int = 5) -> float:
    """Median wall time of `python -c 'import agent_comms.cli'`: interpreter start-up plus imports."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import agent_comms.cli"], check=True)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def write_repeated(src: Path, dst: Path, target_bytes: int) -> tuple[int, int]:
    """Write `src` again and again into `dst` up to `target_bytes` (whole lines); (bytes, lines)."""
    data = src.read_bytes()
    lines_per_copy = data.count(b"\n")
    written = lines = 0
    with open(dst, "wb") as f:
        while written + len(data) <= target_bytes:
            f.write(data)
            written += len(data)
            lines += lines_per_copy
        cut = data.rfind(b"\n", 0, target_bytes - written) + 1
        f.write(data[:cut])
    return written + cut, lines + data.count(b"\n", 0, cut)


# -- latency at a steady write rate --------------------------------------------------------------


class AckWatch:
    """Beside the publisher: when was each copy of each line acknowledged?

    A core subscription on the stream's subjects sees every publish with its reply subject and
    Nats-Msg-Id; one on `_INBOX.>` sees the PubAck the server sends to that reply subject once
    the message is stored, at the moment the publisher gets it.
    """

    def __init__(self, expected_copies: int) -> None:
        self.reply_of: dict[str, tuple[int, int]] = {}  # reply subject -> (line, 0 run / 1 general)
        self.acked_at: dict[str, float] = {}
        self.bad_acks = 0
        self.expected = expected_copies
        self.all_acked = asyncio.Event()

    async def on_publish(self, msg: Any) -> None:
        mid = (msg.headers or {}).get("Nats-Msg-Id", "")
        parts = mid.split(":")
        if len(parts) >= 4 and msg.reply:
            self.reply_of[msg.reply] = (int(parts[2]), 1 if mid.endswith(":general") else 0)

    async def on_ack(self, msg: Any) -> None:
        t = time.perf_counter()
        try:
            resp = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(resp, dict) or "seq" not in resp or "error" in resp:
            self.bad_acks += 1
            return
        self.acked_at.setdefault(msg.subject, t)
        if len(self.acked_at) >= self.expected:
            self.all_acked.set()

    def line_acked_at(self) -> dict[int, float]:
        """Per line, when its last copy was first acknowledged (a re-send has its own reply)."""
        copies: dict[int, list[float]] = {}
        for reply, (line, channel) in self.reply_of.items():
            t = self.acked_at.get(reply)
            if t is not None:
                slot = copies.setdefault(line, [math.inf, math.inf])
                slot[channel] = min(slot[channel], t)
        return {line: max(ts) for line, ts in copies.items() if max(ts) < math.inf}


async def watch_log(stream: asyncio.StreamReader, seen: dict[str, asyncio.Event]) -> None:
    """Set the event named after each log event the publisher writes (readiness, not sleeps)."""
    async for raw in stream:
        with contextlib.suppress(orjson.JSONDecodeError):
            doc = orjson.loads(raw)
            if isinstance(doc, dict) and doc.get("event") in seen:
                seen[doc["event"]].set()


async def measure_latency(url: str, watch: Path, lines: list[bytes], rate: int) -> dict[str, Any]:
    """Write `lines` at `rate` per second into a watched file; time each from its write to its acks."""
    n_lines = len(lines)
    watcher = AckWatch(2 * n_lines)
    nc = await nats.connect(url, name="bench-ack-watch")
    await nc.subscribe("argo.workflow.>", cb=watcher.on_publish)
    await nc.subscribe("_INBOX.>", cb=watcher.on_ack)
    await nc.flush()
    seen = {"nats_connected": asyncio.Event(), "file_found": asyncio.Event()}
    proc = await asyncio.create_subprocess_exec(
        *publisher_cmd(watch), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=publisher_env(url),
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    log_task = asyncio.create_task(watch_log(proc.stderr, seen))
    written = [0.0] * (n_lines + 1)
    try:
        await asyncio.wait_for(seen["nats_connected"].wait(), 20)
        fd = os.open(watch / EVENTS_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            await asyncio.wait_for(seen["file_found"].wait(), 20)
            start = time.perf_counter()
            for i, line in enumerate(lines, 1):
                delay = start + (i - 1) / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                os.write(fd, line)  # one write per line, no buffering: what a flush per line does
                written[i] = time.perf_counter()
            write_s = time.perf_counter() - start
        finally:
            os.close(fd)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.all_acked.wait(), 30)
        await nc.flush()  # the last publishes' reply subjects
        t_term = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        stdout = await asyncio.wait_for(proc.stdout.read(), 60)
        rc = await asyncio.wait_for(proc.wait(), 60)
        stop_s = time.perf_counter() - t_term
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log_task.cancel()
        await nc.close()

    delays = sorted((t - written[line]) * 1000 for line, t in watcher.line_acked_at().items())

    def pct(p: float) -> float:
        if not delays:
            return math.nan
        return delays[min(len(delays) - 1, max(0, math.ceil(p / 100 * len(delays)) - 1))]

    summary_lines = [ln for ln in stdout.decode().splitlines() if ln.startswith("{")]
    summary = orjson.loads(summary_lines[-1]) if summary_lines else {}
    return {
        "rate_lines_per_s": rate,
        "lines": n_lines,
        "achieved_lines_per_s": n_lines / write_s,
        "lines_acknowledged": len(delays),
        "bad_acks": watcher.bad_acks,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": delays[-1] if delays else math.nan,
        "exit_code": rc,
        "sigterm_to_exit_s": stop_s,
        "summary": {k: v for k, v in summary.items() if k != "files"},
    }

"""The publisher against a real nats-server: every line stored exactly once, whatever fails.

Each test runs `agent-comms publish` as a process (as in the pod), writes files the way Codex
does, and compares the stream's content with the ids computed independently from the files.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson

from agent_comms.embedded import EmbeddedNats
from agent_comms.store.rows import row_from_body
from tests.integration.conftest import create_stream
from tests.support.publisher import IDENTITY, expected_ids, start_publisher, wait_started
from tests.support.stream import Stored, message_count, read_stream_sync

EVENTS = ".codex-implementation-events.jsonl"
LOG = ".codex-implementation-agent.log"


def event_line(i: int) -> bytes:
    item = {"id": f"item_{i}", "type": "agent_message", "text": f"Step {i}: working on it."}
    return orjson.dumps({"type": "item.completed", "item": item}) + b"\n"


def write(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def assert_exactly_once(stored: list[Stored], files: list[Path], **kw: str) -> None:
    """The stream holds each line once on the run channel and once on the general channel."""
    want = [mid for f in files for mid in expected_ids(f, **kw)]
    run = Counter(m.msg_id for m in stored if m.body["channel"] == "run")
    general = Counter(m.msg_id for m in stored if m.body["channel"] == "general")
    assert sorted(run) == sorted(want), "run channel differs from the files' lines"
    assert sorted(general) == sorted(mid + ":general" for mid in want), "general channel differs"
    assert max(run.values(), default=1) == 1 and max(general.values(), default=1) == 1, (
        "a line was stored twice"
    )
    for m in stored:
        expected = m.body["message_id"] + (":general" if m.body["channel"] == "general" else "")
        assert m.msg_id == expected
        row_from_body(dict(m.body), arrived_via="nats")  # the consumer would store it as it is


def wait_for(predicate, timeout_s: float = 20.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stored_count(url: str) -> int:
    return message_count(url)


def test_files_created_after_start_and_growing_are_published_once(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    pub = wait_started(start_publisher(watch_dir, nats_server.url))
    events, log = watch_dir / EVENTS, watch_dir / LOG
    for i in range(1, 301):
        write(events, event_line(i))
        if i % 3 == 0:
            write(log, f"Step {i}: working on it.\n".encode())
        if i % 100 == 0:
            time.sleep(0.3)
    write(log, b"\n")  # a blank line is a line too
    wait_for(lambda: stored_count(nats_server.url) == 2 * (300 + 101), what="live lines before SIGTERM")
    code, summary, _took = pub.terminate()
    assert code == 0, pub.log()
    assert summary["lines_published"] == 401 and summary["lines_pending"] == 0
    stored = read_stream_sync(nats_server.url)
    assert_exactly_once(stored, [events, log])
    first = next(m for m in stored if m.body["channel"] == "run" and m.body["source"] == EVENTS)
    assert first.subject == "argo.workflow.agents.codex-impl-abc.uid-1234.agent.implementation.message"
    general = next(m for m in stored if m.body["channel"] == "general")
    assert general.subject.startswith("argo.workflow.general.")
    assert (watch_dir / ".agent-comms" / "identity.json").is_file()
    assert (watch_dir / ".agent-comms" / "checkpoints" / f"{EVENTS}.json").is_file()


def test_server_restarted_mid_run_loses_and_duplicates_nothing(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    events = watch_dir / EVENTS
    pub = start_publisher(watch_dir, nats_server.url)
    for i in range(1, 201):
        write(events, event_line(i))
    wait_for(lambda: stored_count(nats_server.url) == 400, what="first half")
    nats_server.stop()
    for i in range(201, 401):
        write(events, event_line(i))
    time.sleep(1.5)  # the publisher keeps tailing while the server is down
    nats_server.start()
    for i in range(401, 501):
        write(events, event_line(i))
    wait_for(lambda: stored_count(nats_server.url) == 1000, what="all lines after the restart")
    code, summary, _ = pub.terminate()
    assert code == 0, pub.log()
    assert summary["lines_pending"] == 0
    assert_exactly_once(read_stream_sync(nats_server.url), [events])
    assert '"nats_reconnected"' in pub.log()


def test_server_down_at_start_then_up_publishes_everything(tmp_path: Path, watch_dir: Path) -> None:
    server = EmbeddedNats(tmp_path / "late-nats")
    events = watch_dir / EVENTS
    for i in range(1, 101):
        write(events, event_line(i))
    pub = start_publisher(watch_dir, server.url)
    time.sleep(1.5)
    server.start()
    create_stream(server.url)
    for i in range(101, 151):
        write(events, event_line(i))
    try:
        wait_for(lambda: stored_count(server.url) == 300, what="lines once the server came up")
        code, summary, _ = pub.terminate()
        assert code == 0
        assert summary["lines_pending"] == 0
        assert_exactly_once(read_stream_sync(server.url), [events])
    finally:
        server.kill()


def test_server_never_up_still_exits_zero_within_drain_timeout(tmp_path: Path, watch_dir: Path) -> None:
    events, log = watch_dir / EVENTS, watch_dir / LOG
    for i in range(1, 41):
        write(events, event_line(i))
    write(log, b"one\ntwo\nunterminated")
    never = EmbeddedNats(tmp_path / "never")  # never started: nothing listens on its port
    pub = wait_started(start_publisher(watch_dir, never.url, "--drain-timeout", "2"))
    code, summary, took = pub.terminate()
    assert code == 0, pub.log()
    assert took < 2 + 2.5, f"exit took {took:.1f}s with a 2s drain timeout"
    assert summary["lines_read"] == 43
    assert summary["lines_pending"] == 43 and summary["lines_published"] == 0
    assert '"drain_started"' in pub.log()


def test_sigterm_with_50000_lines_unsent_acknowledges_all_before_exit(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    events = watch_dir / EVENTS
    pub = wait_started(start_publisher(watch_dir, nats_server.url))
    with open(events, "ab") as f:
        f.write(b"".join(event_line(i) for i in range(1, 50_001)))
    code, summary, took = pub.terminate()
    assert code == 0, pub.log()
    assert summary["lines_published"] == 50_000, summary
    assert summary["lines_pending"] == 0
    assert took < 25
    stored = read_stream_sync(nats_server.url)
    assert len(stored) == 100_000
    assert_exactly_once(stored, [events])


def test_partial_line_written_in_two_halves_is_one_message(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    events = watch_dir / EVENTS
    pub = start_publisher(watch_dir, nats_server.url)
    line = event_line(1)
    write(events, line[:20])
    time.sleep(2.0)
    assert stored_count(nats_server.url) == 0, "half a line must not be published"
    write(events, line[20:])
    wait_for(lambda: stored_count(nats_server.url) == 2, what="the completed line")
    code, _, _ = pub.terminate()
    assert code == 0
    stored = read_stream_sync(nats_server.url)
    assert_exactly_once(stored, [events])
    assert stored[0].body["content"] == "Step 1: working on it."


def test_unterminated_last_line_is_published_once_at_drain(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    log = watch_dir / LOG
    write(log, b"done\nfinal words without newline")
    pub = start_publisher(watch_dir, nats_server.url)
    wait_for(lambda: stored_count(nats_server.url) == 2, what="the complete line")
    code, summary, _ = pub.terminate()
    assert code == 0 and summary["lines_published"] == 2
    stored = read_stream_sync(nats_server.url)
    assert_exactly_once(stored, [log])
    last = [m for m in stored if m.body["line"] == 2 and m.body["channel"] == "run"]
    assert last[0].body["content"] == "final words without newline"
    assert last[0].body["attrs"].get("partial_line") is True


def test_hostile_lines_become_one_clean_message_each_and_do_not_stall(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    events = watch_dir / EVENTS
    pub = start_publisher(watch_dir, nats_server.url)
    secret = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    write(
        events,
        b'{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"'
        + b"x" * 5_000_000
        + b'"}}\n',
    )
    write(events, b"caf\xe9 \xff\xfe not utf-8\n")
    write(events, b"\x00" * 100 + b"\n")
    write(
        events,
        orjson.dumps(
            {
                "type": "item.completed",
                "item": {"id": "item_2", "type": "agent_message", "text": f"token {secret}"},
            }
        )
        + b"\n",
    )
    write(events, event_line(5))
    wait_for(lambda: stored_count(nats_server.url) == 10, what="five messages")
    code, _, _ = pub.terminate()
    assert code == 0
    stored = read_stream_sync(nats_server.url)
    assert_exactly_once(stored, [events])
    run = sorted((m for m in stored if m.body["channel"] == "run"), key=lambda m: m.body["line"])
    big, bad, nul, sec, last = (m.body for m in run)
    assert len(big["content"].encode()) <= 64 * 1024 and big["attrs"].get("oversized") is True
    assert "\ufffd" in bad["content"] and bad["attrs"].get("invalid_utf8") is True
    assert "\x00" not in nul["content"]
    assert secret not in orjson.dumps(sec).decode() and sec["attrs"].get("redacted", 0) >= 1
    assert last["content"] == "Step 5: working on it."


def test_file_truncated_and_rewritten_in_place_publishes_new_lines(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    log = watch_dir / LOG
    pub = start_publisher(watch_dir, nats_server.url)
    write(log, b"".join(b"first attempt line %d\n" % i for i in range(50)))
    wait_for(lambda: stored_count(nats_server.url) == 100, what="the first content")
    first = log.read_bytes()
    with open(log, "r+b") as f:  # what Codex's runner does: open with 'w' and write again
        f.truncate(0)
        f.write(b"".join(b"second content, longer than before: line %d\n" % i for i in range(80)))
    wait_for(lambda: stored_count(nats_server.url) == 100 + 160, what="the rewritten content")
    code, _, _ = pub.terminate()
    assert code == 0
    stored = read_stream_sync(nats_server.url)
    old = watch_dir / "old.log"
    old.write_bytes(first)
    ids = {m.msg_id for m in stored if m.body["channel"] == "run"}
    assert ids == {i.replace("old.log", LOG) for i in expected_ids(old)} | set(expected_ids(log))
    assert "file_reset" in pub.log()


def test_retried_step_rewriting_its_files_publishes_the_new_attempt(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    log = watch_dir / LOG
    write(log, b"".join(b"attempt one %d\n" % i for i in range(30)))
    pub = start_publisher(watch_dir, nats_server.url)
    wait_for(lambda: stored_count(nats_server.url) == 60, what="first attempt")
    assert pub.terminate()[0] == 0
    # A new pod: new STEP_ID, same volume and checkpoints; the agent truncates and rewrites.
    step2 = "codex-impl-abc-step-2"
    pub2 = wait_started(start_publisher(watch_dir, nats_server.url, env={"STEP_ID": step2}))
    log.write_bytes(b"".join(b"attempt one %d\n" % i for i in range(10)) + b"attempt two only\n")
    wait_for(lambda: stored_count(nats_server.url) == 60 + 22, what="second attempt")
    assert pub2.terminate()[0] == 0
    stored = read_stream_sync(nats_server.url)
    run = [m for m in stored if m.body["channel"] == "run"]
    assert Counter(m.body["step_id"] for m in run) == {IDENTITY["STEP_ID"]: 30, step2: 11}
    assert {m.msg_id for m in run if m.body["step_id"] == step2} == set(expected_ids(log, step_id=step2))

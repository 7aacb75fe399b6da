"""Publisher knobs against a real server: the run cap, the general policy, --once, polling."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from agent_comms.core.runfiles import checkpoint_dir
from agent_comms.embedded import EmbeddedNats
from agent_comms.store.rows import row_from_body
from tests.integration.test_publish import (
    EVENTS,
    LOG,
    assert_exactly_once,
    event_line,
    stored_count,
    wait_for,
    write,
)
from tests.support.publisher import expected_ids, start_publisher, wait_started
from tests.support.stream import read_stream_sync


def test_run_cap_stops_live_publishing_and_says_so_once(nats_server: EmbeddedNats, watch_dir: Path) -> None:
    events = watch_dir / EVENTS
    write(events, b"".join(event_line(i) for i in range(1, 201)))
    pub = start_publisher(watch_dir, nats_server.url, "--max-run-bytes", "40K")
    wait_for(
        lambda: any(m.body["source"] == "agent-comms" for m in read_stream_sync(nats_server.url)),
        what="the cap notice",
    )
    write(events, event_line(201))
    time.sleep(0.5)
    code, summary, _ = pub.terminate()
    assert code == 0 and summary["capped"] is True
    stored = read_stream_sync(nats_server.url)
    notices = [m for m in stored if m.body["source"] == "agent-comms"]
    assert {m.body["channel"] for m in notices} == {"run", "general"} and len(notices) == 2
    assert notices[0].body["kind"] == "status" and "max-run-bytes" in notices[0].body["content"]
    for m in stored:
        row_from_body(dict(m.body), arrived_via="nats")  # the consumer stores the notice like any line
    lines = [m for m in stored if m.body["source"] == EVENTS and m.body["channel"] == "run"]
    assert 0 < len(lines) < 200
    assert sum(len(m.body["content"]) for m in lines) < 40 * 1024
    assert summary["lines_pending"] == 201 - len(lines)
    assert '"run_cap_reached"' in pub.log()


def test_general_kinds_policy_keeps_other_kinds_off_the_general_channel(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    events, log = watch_dir / EVENTS, watch_dir / LOG
    write(events, b'{"type":"turn.started"}\n' + event_line(2))
    write(log, b"hello\n")
    pub = start_publisher(watch_dir, nats_server.url, "--general-kinds", "message")
    wait_for(lambda: stored_count(nats_server.url) == 4, what="three run copies and one general copy")
    assert pub.terminate()[0] == 0
    stored = read_stream_sync(nats_server.url)
    general = [m for m in stored if m.body["channel"] == "general"]
    assert [m.body["kind"] for m in general] == ["message"]
    assert sorted(m.msg_id for m in stored if m.body["channel"] == "run") == sorted(
        expected_ids(events) + expected_ids(log)
    )


def test_once_exits_zero_when_everything_is_acknowledged(nats_server: EmbeddedNats, watch_dir: Path) -> None:
    log = watch_dir / LOG
    write(log, b"a\nb\nunterminated")
    code, summary, _ = start_publisher(watch_dir, nats_server.url, "--once").wait()
    assert code == 0 and summary["lines_published"] == 3
    assert_exactly_once(read_stream_sync(nats_server.url), [log])


def test_lines_sent_again_without_checkpoints_are_absorbed_and_counted_as_duplicates(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    log = watch_dir / LOG
    write(log, b"".join(b"line %d\n" % i for i in range(500)))
    code, first, _ = start_publisher(watch_dir, nats_server.url, "--once").wait()
    assert code == 0 and first["lines_published"] == 500 and first["lines_duplicate"] == 0
    shutil.rmtree(checkpoint_dir(watch_dir))  # a lost volume: the next sidecar starts at byte 0
    code, again, _ = start_publisher(watch_dir, nats_server.url, "--once").wait()
    assert code == 0 and again["lines_published"] == again["lines_duplicate"] == 500
    assert_exactly_once(read_stream_sync(nats_server.url), [log])


def test_once_exits_nonzero_when_lines_stay_pending(tmp_path: Path, watch_dir: Path) -> None:
    write(watch_dir / LOG, b"a\nb\n")
    never = EmbeddedNats(tmp_path / "never")
    code, summary, took = start_publisher(watch_dir, never.url, "--once", "--drain-timeout", "1").wait()
    assert code == 1 and summary["lines_pending"] == 2
    assert took < 10


def test_polling_mode_publishes_lines_as_they_arrive(nats_server: EmbeddedNats, watch_dir: Path) -> None:
    pub = wait_started(start_publisher(watch_dir, nats_server.url, "--poll"))
    events = watch_dir / EVENTS
    for i in range(1, 21):
        write(events, event_line(i))
        time.sleep(0.02)
    wait_for(lambda: stored_count(nats_server.url) == 40, what="lines seen by polling")
    code, _, _ = pub.terminate()
    assert code == 0 and '"watch_mode":"polling"' in pub.log()
    assert_exactly_once(read_stream_sync(nats_server.url), [events])


def test_small_server_max_payload_shrinks_bodies_instead_of_losing_lines(
    tmp_path: Path, watch_dir: Path
) -> None:
    from tests.integration.conftest import create_stream

    server = EmbeddedNats(tmp_path / "small", max_payload=16 * 1024).start()
    try:
        create_stream(server.url)
        log = watch_dir / LOG
        write(log, b"y" * 60_000 + b"\nsmall\n")
        code, summary, _ = start_publisher(watch_dir, server.url, "--once").wait()
        assert code == 0 and summary["lines_published"] == 2
        stored = read_stream_sync(server.url)
        assert_exactly_once(stored, [log])
        big = next(m for m in stored if m.body["line"] == 1)
        assert big.body["attrs"]["payload_fit"] and len(big.body["content"]) < 16 * 1024
    finally:
        server.kill()


def test_metrics_endpoint_counts_acknowledged_and_pending_lines(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    import urllib.request

    from agent_comms.embedded import free_port

    port = free_port()
    write(watch_dir / LOG, b"".join(b"line %d\n" % i for i in range(25)))
    pub = start_publisher(watch_dir, nats_server.url, "--metrics-port", str(port))
    wait_for(lambda: stored_count(nats_server.url) == 50, what="the lines")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()

    wait_for(lambda: 'agent_comms_publish_lines_total{result="acked"} 25.0' in scrape(), what="acked count")
    text = scrape()
    assert "agent_comms_publish_pending_lines 0.0" in text
    assert "agent_comms_publish_retries_total 0.0" in text
    assert pub.terminate()[0] == 0

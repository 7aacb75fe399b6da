"""The publisher killed with SIGKILL mid-run and started again: nothing lost, nothing duplicated.

Inside the stream's duplicate window the re-sent lines are absorbed by Nats-Msg-Id; after the
window has passed, only the checkpoint protects, so at most the lines that were in flight (and
acked after the last checkpoint write) may be stored twice.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from agent_comms.embedded import EmbeddedNats
from tests.integration.conftest import create_stream
from tests.integration.test_publish import EVENTS, assert_exactly_once, event_line, stored_count, wait_for
from tests.support.publisher import expected_ids, start_publisher
from tests.support.stream import read_stream_sync

LINES = 40_000


def kill_mid_run(server: EmbeddedNats, watch_dir: Path, *args: str) -> Path:
    events = watch_dir / EVENTS
    events.write_bytes(b"".join(event_line(i) for i in range(1, LINES + 1)))
    pub = start_publisher(watch_dir, server.url, *args)
    wait_for(lambda: stored_count(server.url) >= 10_000, what="publishing under way")
    pub.kill()
    assert pub.proc.returncode == -9
    assert stored_count(server.url) < 2 * LINES, "the kill came too late to test anything"
    return events


def test_sigkill_and_restart_within_duplicate_window_stores_each_line_once(
    nats_server: EmbeddedNats, watch_dir: Path
) -> None:
    events = kill_mid_run(nats_server, watch_dir)
    pub = start_publisher(watch_dir, nats_server.url)
    wait_for(lambda: stored_count(nats_server.url) >= 2 * LINES, timeout_s=60, what="the rest after restart")
    code, summary, _ = pub.terminate()
    assert code == 0
    assert summary["lines_pending"] == 0
    assert '"checkpoint":"resumed"' in pub.log()
    assert_exactly_once(read_stream_sync(nats_server.url), [events])


def test_sigkill_after_duplicate_window_duplicates_at_most_the_in_flight_lines(
    tmp_path: Path, watch_dir: Path
) -> None:
    server = EmbeddedNats(tmp_path / "short-window").start()
    create_stream(server.url, duplicate_window_s=1.0)
    window = 256  # messages in flight at most: 128 lines of two copies
    try:
        events = kill_mid_run(server, watch_dir, "--max-in-flight", str(window))
        time.sleep(2.5)  # let the duplicate window pass
        pub = start_publisher(watch_dir, server.url, "--max-in-flight", str(window))
        wait_for(
            lambda: {m.msg_id for m in read_stream_sync(server.url)} >= set(expected_ids(events)),
            timeout_s=60,
            what="every line stored",
        )
        code, summary, _ = pub.terminate()
        assert code == 0 and summary["lines_pending"] == 0
        stored = read_stream_sync(server.url)
        run = Counter(m.msg_id for m in stored if m.body["channel"] == "run")
        assert set(run) == set(expected_ids(events)), "a line was lost"
        twice = [mid for mid, n in run.items() if n > 1]
        assert max(run.values()) <= 2
        # In flight at the kill: the window, plus what was acked after the last checkpoint write
        # (checkpoint interval 0.05 s in tests, a few thousand lines at most on this machine).
        assert len(twice) <= window // 2 + 5_000, f"{len(twice)} lines stored twice"
    finally:
        server.kill()

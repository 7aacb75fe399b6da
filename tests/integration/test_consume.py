"""`agent-comms consume` as a process against a real nats-server and a real Postgres.

The stream and the durable consumer come from the repo's NACK YAML through `agent-comms nats
apply` (single-server overrides, a short ack wait), so the consumer binds to what production
gets. Every test ends with the same check: one row per (message_id, channel), none missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from nats.js.errors import NotFoundError

from agent_comms.core.message import body_with_channel
from agent_comms.embedded import EmbeddedNats, EmbeddedPostgres
from tests.integration.conftest import fresh_database
from tests.support.ingest import (
    CONSUMER_YAML,
    STREAM_YAML,
    ConsumerProcess,
    Outgoing,
    apply_repo_resources,
    consumer_state,
    counts,
    dead_letters,
    duplicate_keys,
    encode,
    make_bodies,
    nats_apply,
    publish_sync,
    start_consumer,
    stored,
    stream_state,
    wait_for,
)
from tests.support.publisher import IDENTITY, expected_ids, start_publisher
from tests.support.stream import read_stream_sync

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "codex"


@pytest.fixture
def consumers(tmp_path: Path) -> Iterator[list[ConsumerProcess]]:
    """Consumer processes a test starts; killed at the end whatever happened."""
    started: list[ConsumerProcess] = []
    yield started
    for c in started:
        c.kill()


def consume(
    started: list[ConsumerProcess], nats: EmbeddedNats, dsn: str, tmp_path: Path, *args: str
) -> ConsumerProcess:
    c = start_consumer(nats.url, dsn, tmp_path, *args)
    started.append(c)
    return c


def stored_seqs(dsn: str) -> list[int]:
    return sorted(s.stream_seq for ch in ("run", "general") for s in stored(dsn, channel=ch) if s.stream_seq)


def wait_metric(c: ConsumerProcess, name: str, value: float, timeout_s: float = 10) -> None:
    """Metrics follow the commit by a moment: wait for the value rather than race it."""
    wait_for(lambda: metric(c, name) == value, timeout_s, f"{name} == {value}", c)


def metric(c: ConsumerProcess, name: str) -> float:
    total = 0.0
    for line in c.get("/metrics").splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def same_instant(a: str, b: str) -> bool:
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


def test_recorded_run_is_stored_once_per_channel_with_the_published_fields(
    bare_nats: EmbeddedNats, database: str, watch_dir: Path, tmp_path: Path, consumers: list[ConsumerProcess]
) -> None:
    apply_repo_resources(bare_nats.url)
    events = watch_dir / ".codex-implementation-events.jsonl"
    log = watch_dir / ".codex-implementation-agent.log"
    shutil.copy(FIXTURES / "current-events.jsonl", events)
    log.write_bytes(b"Reading the retry helper.\n\nAdding jitter \x1b[32mdone\x1b[0m\nunterminated last line")
    code, _, _ = start_publisher(watch_dir, bare_nats.url, "--once").wait(60)
    assert code == 0
    published = read_stream_sync(bare_nats.url)

    c = consume(consumers, bare_nats, database, tmp_path)
    want = {ch: sum(1 for m in published if m.body["channel"] == ch) for ch in ("run", "general")}
    wait_for(lambda: counts(database) == want, 30, f"rows {want}", c)

    lines = len(expected_ids(events)) + len(expected_ids(log))
    assert want == {"run": lines, "general": lines}, "rows == lines, per channel"
    by_key = {(m.body["message_id"], m.body["channel"]): m for m in published}
    for channel in ("run", "general"):
        rows = stored(database, IDENTITY["WORKFLOW_UID"], channel)
        assert len(rows) == lines
        for row in rows:
            sent = by_key[(row.body["message_id"], channel)]
            assert row.arrived_via == "nats" and row.stream_seq == sent.seq
            assert same_instant(row.body.pop("timestamp"), sent.body["timestamp"])
            assert row.body == {k: v for k, v in sent.body.items() if k != "timestamp"}
    assert duplicate_keys(database) == 0 and dead_letters(database) == []
    wait_metric(c, 'agent_comms_ingest_rows_total{channel="run"}', lines)
    wait_metric(c, 'agent_comms_ingest_messages_total{result="stored"}', 2 * lines)
    assert metric(c, 'agent_comms_ingest_messages_total{result="duplicate"}') == 0
    wait_metric(c, "agent_comms_consumer_ready ", 1.0)
    assert c.terminate() == 0


def test_readyz_fails_until_the_consumer_exists_and_consume_creates_nothing(
    bare_nats: EmbeddedNats, database: str, tmp_path: Path, consumers: list[ConsumerProcess]
) -> None:
    c = consume(consumers, bare_nats, database, tmp_path)
    c.wait_http()
    wait_for(lambda: bool(c.events("consumer_not_bound")), 10, "the missing-consumer log line", c)
    status, body = c.readyz()
    assert status == 503 and body["consumer_bound"] is False
    assert (
        "agent-comms nats apply nats/stream.yaml jangar-consumer/consumer.yaml"
        in body["problems"]["consumer_bound"]
    )
    assert "agent-comms nats apply" in c.events("consumer_not_bound")[0]["problem"]
    with pytest.raises(NotFoundError):
        stream_state(bare_nats.url)  # binding never creates the stream (nor the consumer)

    nats_apply(bare_nats.url, STREAM_YAML)
    wait_for(
        lambda: "consumer not found" in c.readyz()[1]["problems"].get("consumer_bound", ""), 10, "retry", c
    )
    assert c.readyz()[0] == 503, "a stream alone is not enough"
    nats_apply(bare_nats.url, CONSUMER_YAML)
    c.wait_ready(15)
    publish_sync(bare_nats.url, encode(make_bodies(10)))
    wait_for(lambda: counts(database) == {"run": 10, "general": 10}, 15, "rows", c)
    assert c.terminate() == 0


def test_sigkill_between_commit_and_ack_leaves_no_duplicate_and_no_gap(
    bare_nats: EmbeddedNats, database: str, tmp_path: Path, consumers: list[ConsumerProcess]
) -> None:
    apply_repo_resources(bare_nats.url, ack_wait="1s")
    publish_sync(bare_nats.url, encode(make_bodies(1500)))  # 3000 messages
    crashed = consume(
        consumers, bare_nats, database, tmp_path, "--batch-size", "500", "--test-exit-after-commit", "3"
    )
    assert crashed.proc.wait(30) == -9, crashed.log()[-3000:]
    committed = stored_seqs(database)
    assert crashed.events("exit_after_commit_hook") and committed, "killed after its third commit"
    floor = consumer_state(bare_nats.url).ack_floor.stream_seq
    unacked = [seq for seq in committed if seq > floor]
    assert unacked, "the last committed batch was never acked"

    restarted = consume(consumers, bare_nats, database, tmp_path, "--batch-size", "500")
    wait_for(lambda: counts(database) == {"run": 1500, "general": 1500}, 30, "every row", restarted)
    assert duplicate_keys(database) == 0
    assert stored_seqs(database) == list(range(1, 3001)), "no gap: every stream sequence stored once"
    # Redelivered after the crash, found already stored: exactly the committed-but-unacked batch.
    wait_metric(restarted, "agent_comms_ingest_duplicate_rows_total", len(unacked))
    wait_metric(restarted, 'agent_comms_ingest_messages_total{result="duplicate"}', len(unacked))
    wait_for(lambda: consumer_state(bare_nats.url).num_ack_pending == 0, 10, "all acked", restarted)
    assert restarted.terminate() == 0


def test_postgres_down_longer_than_the_ack_wait_loses_nothing_and_dead_letters_nothing(
    bare_nats: EmbeddedNats, own_postgres: EmbeddedPostgres, tmp_path: Path, consumers: list[ConsumerProcess]
) -> None:
    ack_wait_s = 1.0
    apply_repo_resources(bare_nats.url, ack_wait=f"{ack_wait_s:g}s")
    total_lines = 15_000
    publish_sync(bare_nats.url, encode(make_bodies(total_lines)))
    with fresh_database(own_postgres.dsn()) as dsn:
        c = consume(consumers, bare_nats, dsn, tmp_path, "--batch-size", "500")
        wait_for(lambda: sum(counts(dsn).values()) > 0, 30, "ingest under way", c)
        own_postgres.stop()
        wait_for(lambda: c.readyz()[1]["database_ok"] is False, 10, "/readyz to report Postgres down", c)
        assert c.readyz()[0] == 503
        before = consumer_state(bare_nats.url)
        time.sleep(3 * ack_wait_s)  # the outage itself: longer than the ack wait
        during = consumer_state(bare_nats.url)
        assert during.delivered.stream_seq == before.delivered.stream_seq, (
            "no fetching while Postgres is down"
        )
        own_postgres.start()
        wait_for(lambda: counts(dsn) == {"run": total_lines, "general": total_lines}, 60, "every row", c)
        assert duplicate_keys(dsn) == 0 and dead_letters(dsn) == []
        assert stored_seqs(dsn) == list(range(1, 2 * total_lines + 1))
        assert consumer_state(bare_nats.url).num_redelivered == 0, "no delivery attempt burnt by the outage"
        c.wait_ready(10)
        assert c.terminate() == 0


def poison() -> list[Outgoing]:
    subject = "argo.workflow.agents.codex-impl-ingest.uid-ingest-1.agent.implementation.message"
    missing = body_with_channel(make_bodies(1, start=900)[0], "run")
    del missing["agent_id"]
    big = body_with_channel(make_bodies(1, start=901)[0], "run") | {"content": "x" * 10_000}
    nul = body_with_channel(make_bodies(1, start=902)[0], "run") | {"content": "a\x00b"}
    return [
        Outgoing(subject, b"{this is not json", "poison-1"),
        Outgoing(subject, b'["an", "array"]', "poison-2"),
        Outgoing(subject, orjson.dumps(missing), "poison-3"),
        Outgoing(subject, orjson.dumps(big), "poison-4"),
        Outgoing(subject, orjson.dumps(nul), "fine-with-nul"),
    ]


def test_poison_messages_are_dead_lettered_around_good_ones_and_replay_stores_them_after_a_fix(
    bare_nats: EmbeddedNats, database: str, tmp_path: Path, consumers: list[ConsumerProcess]
) -> None:
    apply_repo_resources(bare_nats.url)
    good = encode(make_bodies(40), general=False)
    publish_sync(bare_nats.url, good[:20] + poison() + good[20:])
    c = consume(consumers, bare_nats, database, tmp_path, "--max-body-bytes", "4K")
    wait_for(
        lambda: counts(database).get("run") == 41 and len(dead_letters(database)) == 4,
        20,
        "rows + letters",
        c,
    )

    letters = {d.stream_seq: d for d in dead_letters(database)}
    assert sorted(letters) == [21, 22, 23, 24], "stream sequences of the poison messages"
    assert letters[21].reason.startswith("not_json") and letters[22].reason.startswith("not_object")
    assert letters[23].reason == "missing_fields: agent_id" and letters[24].reason.startswith("too_large")
    assert letters[21].preview == "{this is not json" and letters[21].subject.endswith(".message")
    wait_for(lambda: consumer_state(bare_nats.url).num_ack_pending == 0, 10, "poison acked", c)
    assert consumer_state(bare_nats.url).num_redelivered == 0, "poison never loops"
    wait_metric(c, "agent_comms_ingest_dead_letters_total", 4)
    assert any(s.body["content"] == "a\ufffdb" for s in stored(database)), "a NUL is replaced, not poison"
    assert c.terminate() == 0

    # The fix: a larger body limit. Replay re-judges the stored bytes with it.
    env_db = ["--database-url", database]
    listed = _cli("dead-letters", "list", *env_db)
    assert [orjson.loads(ln)["stream_seq"] for ln in listed] == [21, 22, 23, 24]
    summary = orjson.loads(_cli("dead-letters", "replay", "--all", "--max-body-bytes", "1M", *env_db)[-1])
    assert (summary["replayed"], summary["inserted"], summary["still_invalid"]) == (1, 1, 3)
    assert counts(database)["run"] == 42
    (replayed,) = [s for s in stored(database) if s.stream_seq == 24]
    assert replayed.arrived_via == "nats" and len(replayed.body["content"]) == 10_000
    assert [d.stream_seq for d in dead_letters(database)] == [21, 22, 23]


def _cli(*args: str) -> list[bytes]:
    done = subprocess.run([sys.executable, "-m", "agent_comms", *args], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return [ln for ln in done.stdout.splitlines() if ln.startswith(b"{")]


def test_two_consumers_on_one_durable_store_every_message_once(
    bare_nats: EmbeddedNats, database: str, tmp_path: Path, consumers: list[ConsumerProcess]
) -> None:
    apply_repo_resources(bare_nats.url)
    a = consume(consumers, bare_nats, database, tmp_path, "--batch-size", "200")
    b = consume(consumers, bare_nats, database, tmp_path, "--batch-size", "200")
    a.wait_ready()
    b.wait_ready()
    lines = 10_000
    publish_sync(bare_nats.url, encode(make_bodies(lines)))
    wait_for(lambda: counts(database) == {"run": lines, "general": lines}, 60, "every row", a)
    assert duplicate_keys(database) == 0
    assert stored_seqs(database) == list(range(1, 2 * lines + 1))
    wait_for(
        lambda: sum(metric(p, "agent_comms_ingest_rows_total") for p in (a, b)) == 2 * lines, 10, "metrics"
    )
    shares = [metric(p, "agent_comms_ingest_rows_total") for p in (a, b)]
    assert sum(shares) == 2 * lines and min(shares) > 0, f"both replicas took a share: {shares}"
    assert a.terminate() == 0 and b.terminate() == 0


def test_sigterm_commits_and_acks_what_it_holds_and_exits_zero(
    bare_nats: EmbeddedNats, database: str, tmp_path: Path, consumers: list[ConsumerProcess]
) -> None:
    apply_repo_resources(bare_nats.url, ack_wait="30s")
    lines = 15_000
    publish_sync(bare_nats.url, encode(make_bodies(lines)))
    c = consume(consumers, bare_nats, database, tmp_path, "--batch-size", "500")
    wait_for(lambda: sum(counts(database).values()) > 0, 30, "ingest under way", c)
    assert c.terminate(30) == 0
    assert c.events("consumer_stopped"), c.log()[-2000:]
    floor = consumer_state(bare_nats.url).ack_floor.stream_seq
    seqs = stored_seqs(database)
    assert floor > 0 and seqs[:floor] == list(range(1, floor + 1)), "everything acked is committed"

    again = consume(consumers, bare_nats, database, tmp_path)
    wait_for(
        lambda: counts(database) == {"run": lines, "general": lines}, 60, "the rest after restart", again
    )
    assert duplicate_keys(database) == 0
    assert again.terminate() == 0


def test_nats_restart_mid_ingest_is_ridden_out_without_loss(
    bare_nats: EmbeddedNats, database: str, tmp_path: Path, consumers: list[ConsumerProcess]
) -> None:
    apply_repo_resources(bare_nats.url, ack_wait="2s")
    lines = 15_000
    publish_sync(bare_nats.url, encode(make_bodies(lines)))
    c = consume(consumers, bare_nats, database, tmp_path, "--batch-size", "500")
    wait_for(lambda: sum(counts(database).values()) > 0, 30, "ingest under way", c)
    bare_nats.stop()
    bare_nats.start()  # same port and store: the stream and the consumer's state survive
    wait_for(
        lambda: counts(database) == {"run": lines, "general": lines}, 60, "every row after the restart", c
    )
    assert duplicate_keys(database) == 0 and dead_letters(database) == []
    assert c.events("nats_reconnected"), "the consumer rode out the restart on its own connection"
    assert c.terminate() == 0


def test_sigterm_while_postgres_is_down_exits_after_the_drain_timeout_and_loses_nothing(
    bare_nats: EmbeddedNats, own_postgres: EmbeddedPostgres, tmp_path: Path, consumers: list[ConsumerProcess]
) -> None:
    apply_repo_resources(bare_nats.url, ack_wait="1s")
    lines = 10_000
    publish_sync(bare_nats.url, encode(make_bodies(lines)))
    with fresh_database(own_postgres.dsn()) as dsn:
        c = consume(consumers, bare_nats, dsn, tmp_path, "--batch-size", "500", "--drain-timeout", "1")
        wait_for(lambda: sum(counts(dsn).values()) > 0, 30, "ingest under way", c)
        own_postgres.stop()
        wait_for(lambda: c.readyz()[1]["database_ok"] is False, 10, "/readyz to report Postgres down", c)
        started = time.monotonic()
        assert c.terminate(15) == 0
        assert time.monotonic() - started < 8, "bounded by the drain timeout, not by the outage"
        assert c.events("batch_abandoned"), "the batch Postgres would not take was left unacked"
        own_postgres.start()
        again = consume(consumers, bare_nats, dsn, tmp_path)
        wait_for(lambda: counts(dsn) == {"run": lines, "general": lines}, 60, "every row", again)
        assert duplicate_keys(dsn) == 0 and dead_letters(dsn) == []
        assert again.terminate() == 0

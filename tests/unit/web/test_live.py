"""The fan-out's pure parts: which rows a stream wants, and a client queue that stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent_comms.store.feed import Filters, Scope
from agent_comms.web.live import Batch, Subscriber, covers, in_scope, union


def record(**kw: Any) -> dict[str, Any]:
    base = {
        "channel": "run",
        "workflow_uid": "u1",
        "run_id": None,
        "agent_id": "implementation",
        "kind": "message",
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return {**base, **kw}


def test_scopes_select_the_channel_and_the_run() -> None:
    assert in_scope(Scope(general=True), record(channel="general"))
    assert not in_scope(Scope(general=True), record())
    assert in_scope(Scope(workflow_uids=("u1",)), record())
    assert not in_scope(Scope(workflow_uids=("u1",)), record(channel="general"))
    assert in_scope(Scope(run_ids=("r",)), record(workflow_uid="u9", run_id="r"))


def test_union_covers_each_part_and_nothing_more() -> None:
    a, b = Scope(workflow_uids=("u1",)), Scope(general=True, run_ids=("r",))
    both = union([a, b])
    assert covers(both, a) and covers(both, b)
    assert not covers(both, Scope(workflow_uids=("u2",)))
    assert not covers(a, Scope(general=True))


def test_filters_match_like_the_sql() -> None:
    f = Filters(
        agents=("implementation",), kinds=("message", "status"), until=datetime(2026, 6, 1, tzinfo=UTC)
    )
    assert f.matches(record())
    assert not f.matches(record(kind="log"))
    assert not f.matches(record(agent_id="reviewer"))
    assert not f.matches(record(timestamp=datetime(2026, 7, 1, tzinfo=UTC)))


def batch(ids: range) -> Batch:
    return Batch.of([(i, b"<%d>" % i) for i in ids])


def test_an_overflowing_queue_is_dropped_and_marked_for_a_resync() -> None:
    sub = Subscriber(Scope(general=True), Filters(), max_rows=10)
    sub.offer(batch(range(8)))
    assert sub.queued_rows == 8 and not sub.must_resync
    sub.offer(batch(range(8, 12)))
    assert sub.queued_rows == 0 and not sub.queue and sub.must_resync, "memory stays bounded"
    sub.offer(batch(range(99, 100)))
    assert not sub.queue, "nothing queued until the stream re-read from Postgres"


def test_a_batch_sends_only_what_lies_past_the_cursor() -> None:
    b = batch(range(5, 9))
    assert b.after(4) == b"<5><6><7><8>" and b.after(6) == b"<7><8>" and b.after(8) == b""

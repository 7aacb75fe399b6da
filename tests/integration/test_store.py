"""The store against a real Postgres: migrations, the idempotent bulk insert, dead letters, retention.

Each test gets a database of its own (created and dropped by the `database` fixture).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from agent_comms.core.message import body_with_channel
from agent_comms.store import (
    DeadLetter,
    add_dead_letters,
    insert_rows,
    insert_rows_isolating,
    list_dead_letters,
    migrate,
    prepare_staging,
    prune,
    replay_dead_letters,
    row_from_body,
    run_messages,
)
from agent_comms.store.migrate import load_migrations
from agent_comms.store.rows import NUL_REPLACEMENT
from tests.support.ingest import RUN, make_bodies


async def connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True)


async def migrated(dsn: str) -> psycopg.AsyncConnection[Any]:
    conn = await connect(dsn)
    await migrate(conn)
    return conn


def rows_of(bodies: list[dict[str, Any]], channel: str = "run") -> list[Any]:
    return [row_from_body(body_with_channel(b, channel), arrived_via="backfill") for b in bodies]  # type: ignore[arg-type]


async def applied_versions(conn: psycopg.AsyncConnection[Any]) -> list[int]:
    cur = await conn.execute("SELECT version FROM workflow_comms.schema_migrations ORDER BY version")
    return [v for (v,) in await cur.fetchall()]


async def test_migrate_twice_applies_each_version_once(database: str) -> None:
    conn = await connect(database)
    first = await migrate(conn)
    second = await migrate(conn)
    expected = [m.version for m in load_migrations()]
    assert first == expected
    assert second == []
    assert await applied_versions(conn) == expected
    await conn.close()


async def test_concurrent_migrations_in_one_process_apply_once(database: str) -> None:
    conns = [await connect(database) for _ in range(4)]
    results = await asyncio.gather(*(migrate(c) for c in conns))
    expected = [m.version for m in load_migrations()]
    assert sorted(v for r in results for v in r) == expected, "every version applied exactly once in total"
    assert await applied_versions(conns[0]) == expected
    for c in conns:
        await c.close()


def test_concurrent_migrate_commands_apply_once(database: str) -> None:
    cmd = [sys.executable, "-m", "agent_comms", "migrate", "--database-url", database]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err.decode() for _, err in outputs]
    applied = [v for out, _ in outputs for v in orjson.loads(out.splitlines()[-1])["applied"]]
    assert sorted(applied) == [m.version for m in load_migrations()]


async def test_insert_is_idempotent_and_reports_inserted_and_present(database: str) -> None:
    conn = await migrated(database)
    bodies = make_bodies(10)
    first = await insert_rows(conn, rows_of(bodies[:6]))
    second = await insert_rows(conn, rows_of(bodies))
    assert len(first.inserted) == 6 and not first.present
    assert len(second.inserted) == 4 and len(second.present) == 6
    assert second.inserted == {(b["message_id"], "run") for b in bodies[6:]}
    again = await insert_rows(conn, rows_of(bodies) + rows_of(bodies))  # duplicates inside one batch too
    assert not again.inserted and len(again.present) == 10
    assert len(await run_messages(conn, RUN.workflow_uid)) == 10
    await conn.close()


async def test_a_prepared_staging_table_is_reused_and_recreated_when_gone(database: str) -> None:
    conn = await migrated(database)
    bodies = make_bodies(9)
    await prepare_staging(conn)
    first = await insert_rows(conn, rows_of(bodies[:3]), staging_ready=True)
    await conn.execute("DISCARD TEMP")  # the table is gone: the insert must create it again
    second = await insert_rows(conn, rows_of(bodies[3:6]), staging_ready=True)
    await conn.execute("DISCARD TEMP")
    async with conn.transaction():  # the failed COPY inside a caller's transaction (the consumer's case)
        third = await insert_rows(conn, rows_of(bodies[6:]), staging_ready=True)
        await conn.execute("SELECT 1")  # the caller's transaction is still usable
    assert [len(r.inserted) for r in (first, second, third)] == [3, 3, 3]
    assert len(await run_messages(conn, RUN.workflow_uid)) == 9
    await conn.close()


async def test_a_staging_table_lost_with_a_rolled_back_transaction_is_recreated(database: str) -> None:
    conn = await psycopg.AsyncConnection.connect(database)  # not autocommit, as the consumer's
    await migrate(conn)
    await conn.commit()
    bodies = make_bodies(4)
    await conn.execute("DISCARD TEMP")
    await conn.commit()
    try:
        async with conn.transaction():
            await prepare_staging(conn)  # created inside a transaction that then rolls back
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    async with conn.transaction():
        result = await insert_rows(conn, rows_of(bodies), staging_ready=True)
    assert len(result.inserted) == 4
    await conn.close()


async def test_both_channels_of_a_line_are_two_rows(database: str) -> None:
    conn = await migrated(database)
    bodies = make_bodies(3)
    result = await insert_rows(conn, rows_of(bodies, "run") + rows_of(bodies, "general"))
    assert len(result.inserted) == 6
    assert len(await run_messages(conn, RUN.workflow_uid, channel="general")) == 3
    await conn.close()


async def test_stored_body_reads_back_equal_to_the_published_one(database: str) -> None:
    conn = await migrated(database)
    bodies = make_bodies(5)
    await insert_rows(conn, rows_of(bodies))
    stored = await run_messages(conn, RUN.workflow_uid)
    assert [s.body for s in stored] == [body_with_channel(b, "run") for b in bodies]
    assert {s.arrived_via for s in stored} == {"backfill"}
    await conn.close()


async def test_nul_is_replaced_in_text_and_json_values(database: str) -> None:
    conn = await migrated(database)
    body = make_bodies(1)[0]
    body["content"] = "before\x00after"
    body["tool"] = {"name": "sh\x00ell", "arguments": {"k\x00": ["x\x00y"]}}
    body["attrs"] = {"raw": "a\x00b"}
    await insert_rows(conn, rows_of([body]))
    (stored,) = await run_messages(conn, RUN.workflow_uid)
    assert stored.body["content"] == f"before{NUL_REPLACEMENT}after"
    assert stored.body["tool"] == {
        "name": f"sh{NUL_REPLACEMENT}ell",
        "arguments": {f"k{NUL_REPLACEMENT}": [f"x{NUL_REPLACEMENT}y"]},
    }
    assert stored.body["attrs"] == {"raw": f"a{NUL_REPLACEMENT}b", "nul_replaced": 5}
    await conn.close()


async def test_newer_schema_with_unknown_fields_and_kind_is_kept(database: str) -> None:
    conn = await migrated(database)
    body = make_bodies(1)[0] | {"schema": 2, "kind": "thought", "mood": {"level": 3}, "tags": ["a"]}
    await insert_rows(conn, rows_of([body]))
    (stored,) = await run_messages(conn, RUN.workflow_uid)
    assert stored.body["schema"] == 2 and stored.body["kind"] == "thought"
    assert stored.body["mood"] == {"level": 3} and stored.body["tags"] == ["a"]
    cur = await conn.execute("SELECT extra FROM workflow_comms.agent_messages")
    assert (await cur.fetchone()) == ({"mood": {"level": 3}, "tags": ["a"]},)
    await conn.close()


async def test_a_row_postgres_refuses_is_set_aside_and_the_rest_stored(database: str) -> None:
    conn = await migrated(database)
    rows = rows_of(make_bodies(5))
    rows[2] = rows[2]._replace(line=0)  # violates CHECK (line >= 1): validation would never let it through
    async with conn.transaction():
        outcome = await insert_rows_isolating(conn, rows)
    assert list(outcome.rejected) == [2] and "rejected_by_postgres" in outcome.rejected[2]
    assert len(outcome.result.inserted) == 4
    assert len(await run_messages(conn, RUN.workflow_uid)) == 4
    await conn.close()


async def test_dead_letter_seen_again_counts_an_attempt_and_replay_stores_it(database: str) -> None:
    conn = await migrated(database)
    good = body_with_channel(make_bodies(1)[0], "run")
    broken = dict(good)
    del broken["agent_id"]
    raw = orjson.dumps(broken)
    letter = DeadLetter(
        raw, "missing_fields: agent_id", "argo.workflow.x", 7, {"Nats-Msg-Id": good["message_id"]}
    )
    await add_dead_letters(conn, [letter])
    await add_dead_letters(conn, [letter])  # redelivered before its ack landed
    await add_dead_letters(conn, [DeadLetter(b"[1,2]", "not_object: a JSON list", "s", 8)])
    (first, second) = await list_dead_letters(conn)
    assert (first.stream_seq, first.attempts, first.reason) == (7, 2, "missing_fields: agent_id")
    assert second.preview == "[1,2]"

    still = await replay_dead_letters(conn, ids=None, max_body_bytes=1 << 20)
    assert still.replayed == [] and set(still.still_invalid) == {first.id, second.id}

    # "The fix": the stored bytes now carry the field (as if the validation had been relaxed).
    await conn.execute(
        "UPDATE workflow_comms.dead_letters SET raw = %s WHERE id = %s", (orjson.dumps(good), first.id)
    )
    done = await replay_dead_letters(conn, ids=[first.id], max_body_bytes=1 << 20)
    assert done.replayed == [first.id] and len(done.rows.inserted) == 1
    (stored,) = await run_messages(conn, RUN.workflow_uid)
    assert stored.arrived_via == "nats" and stored.stream_seq == 7
    assert [d.id for d in await list_dead_letters(conn)] == [second.id]
    assert len(await list_dead_letters(conn, include_replayed=True)) == 2
    again = await replay_dead_letters(conn, ids=[first.id], max_body_bytes=1 << 20)
    assert again.replayed == [], "a replayed letter is not replayed twice"
    await conn.close()


async def test_prune_deletes_only_rows_older_than_the_cutoff(database: str) -> None:
    conn = await migrated(database)
    bodies = make_bodies(6)
    old = (datetime.now(UTC) - timedelta(days=90)).isoformat().replace("+00:00", "Z")
    for b in bodies[:4]:
        b["timestamp"] = old
    await insert_rows(conn, rows_of(bodies))
    result = await prune(conn, timedelta(days=60), batch_rows=3)  # several batches
    assert result.messages == 4
    assert [s.body["line"] for s in await run_messages(conn, RUN.workflow_uid)] == [5, 6]
    await conn.close()

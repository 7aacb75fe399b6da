"""The backfill against a real Postgres (and, where the live path takes part, a real nats-server
and the real publisher and consumer): every line of a run in the table exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from agent_comms.embedded import EmbeddedNats, free_port
from agent_comms.settings import format_general_kinds
from tests.support.backfill import copy_example, rows, run_backfill
from tests.support.ingest import apply_repo_resources, start_consumer, wait_for
from tests.support.publisher import IDENTITY, expected_ids, start_publisher


def physical_lines(files: list[Path]) -> dict[str, int]:
    return {f.name: len(expected_ids(f)) for f in files}


def assert_complete(dsn: str, files: list[Path], *, step_id: str = IDENTITY["STEP_ID"]) -> list[dict]:  # type: ignore[type-arg]
    """Each line of each file is one run row and one general row, with the ids the files give."""
    stored = rows(dsn)
    keys = Counter((r["message_id"], r["channel"]) for r in stored)
    assert max(keys.values()) == 1, "a row is stored twice"
    for f in files:
        ids = expected_ids(f, step_id=step_id)
        for channel in ("run", "general"):
            got = {r["message_id"] for r in stored if r["source"] == f.name and r["channel"] == channel}
            assert got >= set(ids), f"{f.name} {channel}: {len(set(ids) - got)} lines missing"
    return stored


def test_backfill_alone_stores_a_run_nats_never_saw_and_a_second_run_inserts_nothing(
    tmp_path: Path, database: str
) -> None:
    files = copy_example(tmp_path / "run")
    code, summary, err = run_backfill(tmp_path / "run", database)
    assert code == 0, err
    lines = sum(physical_lines(files).values())
    assert summary["lines"] == lines and summary["rows"] == 2 * lines
    assert summary["inserted"] == 2 * lines and summary["present"] == 0
    assert {f["source"]: f["lines"] for f in summary["files"]} == physical_lines(files)
    stored = assert_complete(database, files)
    assert len(stored) == 2 * lines
    assert {r["arrived_via"] for r in stored} == {"backfill"}
    assert all(r["attrs"].get("timestamp_estimated") == "file_mtime" for r in stored)

    code, again, err = run_backfill(tmp_path / "run", database)
    assert code == 0, err
    assert again["inserted"] == 0 and again["present"] == again["rows"] == 2 * lines


def test_backfill_after_a_half_published_run_inserts_exactly_the_missing_rows(
    tmp_path: Path, nats_server: EmbeddedNats, database: str
) -> None:
    apply_repo_resources(nats_server.url)
    full = copy_example(tmp_path / "full")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    halves = {}
    for f in full:
        data = f.read_bytes().splitlines(keepends=True)
        halves[f.name] = len(data) // 2
        (run_dir / f.name).write_bytes(b"".join(data[: len(data) // 2]))
    code, _, _ = start_publisher(run_dir, nats_server.url, "--once").wait()
    assert code == 0
    consumer = start_consumer(nats_server.url, database, tmp_path)
    consumer.wait_ready()
    published = 2 * sum(halves.values())
    wait_for(lambda: len(rows(database)) == published, 30, "the half-run ingested", consumer)
    assert consumer.terminate() == 0
    for f in full:  # the rest of the run was written while NATS was down
        (run_dir / f.name).write_bytes(f.read_bytes())

    code, summary, err = run_backfill(run_dir, database)
    assert code == 0, err
    lines = sum(physical_lines(full).values())
    assert summary["inserted"] == 2 * lines - published
    assert summary["present"] == published
    stored = assert_complete(database, [run_dir / f.name for f in full])
    assert len(stored) == 2 * lines
    by_via = Counter(r["arrived_via"] for r in stored)
    assert by_via == {"nats": published, "backfill": 2 * lines - published}
    estimated = [r for r in stored if r["arrived_via"] == "backfill"]
    assert {r["attrs"]["timestamp_estimated"] for r in estimated} == {"neighbour"}


def test_backfill_concurrent_with_live_ingest_ends_with_one_clean_ingest(
    tmp_path: Path, nats_server: EmbeddedNats, database: str
) -> None:
    apply_repo_resources(nats_server.url)
    run_dir = tmp_path / "run"
    files = copy_example(run_dir)
    # A bigger run, so the two writers overlap.
    with open(files[0], "ab") as fh:
        for i in range(3000):
            fh.write(
                b'{"type":"item.completed","item":{"id":"item_%d","type":"agent_message","text":"m %d"}}\n'
                % (i, i)
            )
    assert start_publisher(run_dir, nats_server.url, "--once").wait()[0] == 0
    consumer = start_consumer(nats_server.url, database, tmp_path)
    consumer.wait_ready()
    result: dict[str, object] = {}
    t = threading.Thread(target=lambda: result.update(out=run_backfill(run_dir, database)))
    t.start()
    t.join(120)
    lines = sum(physical_lines(files).values())
    wait_for(lambda: len(rows(database)) == 2 * lines, 60, "both writers done", consumer)
    assert consumer.terminate() == 0
    code, summary, err = result["out"]  # type: ignore[misc]
    assert code == 0, err
    assert summary["inserted"] + summary["present"] == summary["rows"] == 2 * lines
    stored = assert_complete(database, files)
    assert len(stored) == 2 * lines
    # Whoever stored a row, its content is what the line means.
    for r in stored:
        assert r["kind"] and r["role"] and r["content"] is not None


def test_retried_step_that_rewrote_its_files_keeps_both_attempts(tmp_path: Path, database: str) -> None:
    run_dir = tmp_path / "run"
    first = copy_example(run_dir)
    assert run_backfill(run_dir, database)[0] == 0
    attempt_one = {r["message_id"] for r in rows(database)}
    log = next(f for f in first if f.name.endswith("agent.log"))
    log.write_bytes(b"attempt two rewrote this file\nwith two lines\n")
    step2 = "codex-impl-abc-step-2"
    code, _summary, err = run_backfill(run_dir, database, env={"STEP_ID": step2})
    assert code == 0, err
    stored = rows(database)
    assert attempt_one <= {r["message_id"] for r in stored}
    second = [r for r in stored if r["step_id"] == step2]
    assert {r["message_id"] for r in second if r["channel"] == "run" and r["source"] == log.name} == set(
        expected_ids(log, step_id=step2)
    )


def test_identity_comes_from_flags_then_identity_json_then_environment(tmp_path: Path, database: str) -> None:
    from agent_comms.core.message import RunIdentity
    from agent_comms.core.runfiles import RunManifest, write_manifest

    run_dir = tmp_path / "run"
    copy_example(run_dir)
    manifest = RunManifest(
        identity=RunIdentity("uid-from-json", "wf-json", "ns-json", "step-json", agent_id="planner"),
        general_kinds=("error", "message"),
        subject_prefix="argo.workflow",
        max_line_bytes=4 * 1024 * 1024,
    )
    write_manifest(run_dir, manifest)
    # The environment says otherwise; identity.json wins over it, and the flag wins over both.
    code, summary, err = run_backfill(
        run_dir,
        database,
        "--workflow-name",
        "wf-flag",
        env={"WORKFLOW_UID": "uid-env", "AGENT_ID": "env-agent"},
    )
    assert code == 0, err
    assert summary["workflow_uid"] == "uid-from-json"
    stored = rows(database, "uid-from-json")
    assert {r["workflow_name"] for r in stored} == {"wf-flag"}
    assert {r["agent_id"] for r in stored} == {"planner"}
    assert {r["step_id"] for r in stored} == {"step-json"}
    general = {r["kind"] for r in stored if r["channel"] == "general"}
    assert general <= {"error", "message"} and format_general_kinds(frozenset(general)) != "all"
    assert summary["rows"] == summary["lines"] + sum(1 for r in stored if r["channel"] == "general")


def test_empty_directory_is_a_clean_no_op(tmp_path: Path, database: str) -> None:
    (tmp_path / "empty").mkdir()
    code, summary, err = run_backfill(tmp_path / "empty", database)
    assert code == 0, err
    assert summary["lines"] == summary["rows"] == summary["inserted"] == 0


def test_unreachable_postgres_fails_nonzero_with_the_reason(tmp_path: Path) -> None:
    copy_example(tmp_path / "run")
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nope"
    code, _, err = run_backfill(tmp_path / "run", dsn, "--db-retry-for", "1")
    assert code != 0
    assert "unreachable" in err and "DATABASE_URL" in err


def test_hostile_lines_are_backfilled_one_clean_row_each(tmp_path: Path, database: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = run_dir / ".codex-implementation-events.jsonl"
    events.write_bytes(
        b'{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"a\\u0000b"}}\n'
        b"\x00\x00\x00\n"
        b"caf\xe9 \xff not utf-8\n"
        b'{"type":"item.comp'
    )
    code, summary, err = run_backfill(run_dir, database)
    assert code == 0, err
    assert summary["lines"] == 4 and summary["inserted"] == 8
    stored = [r for r in rows(database) if r["channel"] == "run"]
    assert [r["line"] for r in stored] == [1, 2, 3, 4]
    for r in stored:
        assert "\x00" not in r["content"] and "\\u0000" not in str(r["attrs"])
    assert stored[3]["kind"] == "error" and stored[3]["attrs"].get("partial_line") is True

"""The JSON API and SSE of `agent-comms consume --no-ingest`, against a real Postgres.

Rows are written through `insert_rows`, the path every writer (consumer, backfill, dead-letter
replay) takes, so the triggers of migration 0003 run exactly as in production. One web process
serves the whole module; each test uses workflow_uids of its own.
"""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import orjson
import pytest

from tests.integration.conftest import PgServer, fresh_database
from tests.support.ingest import ConsumerProcess
from tests.support.sse import SseClient
from tests.support.web import bodies_for, get_json, http, insert, rows_for, start_web, stop, wait_live


@pytest.fixture(scope="module")
def dsn(pg_server: PgServer) -> Iterator[str]:
    with fresh_database(pg_server.admin_dsn) as d:
        yield d


@pytest.fixture(scope="module")
def web(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsumerProcess]:
    c = start_web(dsn, tmp_path_factory.mktemp("web"), "--sse-history", "50")
    try:
        wait_live(c)
        yield c
    finally:
        stop(c)


def uid() -> str:
    return f"uid-{uuid.uuid4().hex[:10]}"


def url(c: ConsumerProcess, path: str) -> str:
    return f"http://127.0.0.1:{c.port}{path}"


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "deflate"])
async def test_sse_sends_history_then_live_rows_each_with_an_id(
    web: ConsumerProcess, dsn: str, compressed: bool
) -> None:
    run = uid()
    await insert(dsn, rows_for(bodies_for(run, 5)))
    client = await SseClient.connect(url(web, f"/api/agents/events?runId={run}"), compressed=compressed)
    try:
        assert client.status == 200 and client.headers["content-type"].startswith("text/event-stream")
        assert client.headers.get("content-encoding") == ("deflate" if compressed else None)
        assert client.headers["vary"] == "Accept-Encoding"
        history = await client.events(5)
        assert [e.data["line"] for e in history] == [1, 2, 3, 4, 5]
        assert all(e.data["channel"] == "run" and e.data["workflow_uid"] == run for e in history)
        await insert(dsn, rows_for(bodies_for(run, 3, start=6)))
        live = await client.events(3, timeout_s=5)
        assert [e.data["line"] for e in live] == [6, 7, 8]
        ids = [e.id for e in history + live]
        assert ids == sorted(ids) and len(set(ids)) == 8 and all(e.id == e.data["id"] for e in history + live)
        assert await client.drain_for(1.5) == [] and client.comments >= 1, "heartbeats, nothing else"
    finally:
        await client.close()


async def test_history_is_a_bounded_window_of_the_newest_rows(web: ConsumerProcess, dsn: str) -> None:
    run = uid()
    await insert(dsn, rows_for(bodies_for(run, 80), general=False))
    client = await SseClient.connect(url(web, f"/api/agents/events?runId={run}"))
    try:
        window = await client.events(50)
        assert [e.data["line"] for e in window] == list(range(31, 81)), "the newest 50, newest last"
        assert await client.drain_for(0.5) == []
    finally:
        await client.close()


async def test_general_channel_stream_and_filters_by_agent_and_kind(web: ConsumerProcess, dsn: str) -> None:
    run = uid()
    client = await SseClient.connect(
        url(web, "/api/agents/events?channel=general&kind=status,error&history=0")
    )
    try:
        await insert(dsn, rows_for(bodies_for(run, 10)))
        general = await client.events(2)
        assert {e.data["kind"] for e in general} == {"status"}
        assert all(e.data["channel"] == "general" and e.data["workflow_uid"] == run for e in general)
    finally:
        await client.close()
    tool_client = await SseClient.connect(url(web, f"/api/agents/events?runId={run}&kind=tool_call"))
    other_agent = await SseClient.connect(url(web, f"/api/agents/events?runId={run}&agent=nobody"))
    try:
        tools = await tool_client.events(2)
        assert [e.data["line"] for e in tools] == [1, 6] and {e.data["kind"] for e in tools} == {"tool_call"}
        await insert(dsn, rows_for(bodies_for(run, 5, start=11)))
        (live,) = await tool_client.events(1)
        assert live.data["line"] == 11
        assert await other_agent.drain_for(1.0) == []
    finally:
        await tool_client.close()
        await other_agent.close()


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "deflate"])
async def test_last_event_id_resumes_with_no_gap_and_no_repeat(
    web: ConsumerProcess, dsn: str, compressed: bool
) -> None:
    run = uid()
    await insert(dsn, rows_for(bodies_for(run, 10), general=False))
    first = await SseClient.connect(url(web, f"/api/agents/events?runId={run}"), compressed=compressed)
    seen = await first.events(10)
    await first.close()
    cut = seen[3].id
    await insert(dsn, rows_for(bodies_for(run, 5, start=11), general=False))
    for headers, query in (({"Last-Event-ID": str(cut)}, ""), ({}, f"&lastEventId={cut}")):
        again = await SseClient.connect(
            url(web, f"/api/agents/events?runId={run}{query}"), headers=headers, compressed=compressed
        )
        try:
            resumed = await again.events(11)
            assert [e.data["line"] for e in resumed] == list(range(5, 16))
            assert await again.drain_for(0.5) == []
        finally:
            await again.close()


async def test_run_id_resolves_to_the_workflow_first_else_every_workflow_carrying_it(
    web: ConsumerProcess, dsn: str
) -> None:
    shared = f"run-{uuid.uuid4().hex[:8]}"
    a, b = uid(), uid()
    await insert(
        dsn, rows_for(bodies_for(a, 2, run_id=shared) + bodies_for(b, 3, run_id=shared), general=False)
    )
    status, doc = get_json(web, f"/api/agents/runs/{shared}")
    assert status == 200 and doc["resolved_by"] == "run_id" and doc["summary"]["messages"] == 5
    assert {w["workflow_uid"] for w in doc["workflows"]} == {a, b}
    status, doc = get_json(web, f"/api/agents/runs/{a}")
    assert doc["resolved_by"] == "workflow_uid" and doc["summary"]["messages"] == 2
    client = await SseClient.connect(url(web, f"/api/agents/events?runId={shared}"))
    try:
        assert len(await client.events(5)) == 5
        c = uid()  # a new workflow with the same run_id joins the live stream
        await insert(dsn, rows_for(bodies_for(c, 1, run_id=shared), general=False))
        (event,) = await client.events(1)
        assert event.data["workflow_uid"] == c
    finally:
        await client.close()


def test_run_messages_page_forward_and_backward_by_cursor(web: ConsumerProcess, dsn: str) -> None:
    run = uid()
    asyncio.run(insert(dsn, rows_for(bodies_for(run, 25))))
    lines: list[int] = []
    cursor = ""
    while True:
        status, page = get_json(web, f"/api/agents/runs/{run}/messages?limit=10{cursor}")
        assert status == 200
        lines += [m["line"] for m in page["messages"]]
        if not page["more_after"]:
            break
        cursor = f"&after={page['last']}"
    assert lines == list(range(1, 26))
    _, tail = get_json(web, f"/api/agents/runs/{run}/messages?limit=10&tail=1")
    assert [m["line"] for m in tail["messages"]] == list(range(16, 26)) and tail["more_before"]
    _, before = get_json(web, f"/api/agents/runs/{run}/messages?limit=10&before={tail['first']}")
    assert [m["line"] for m in before["messages"]] == list(range(6, 16))
    _, around = get_json(
        web,
        f"/api/agents/runs/{run}/messages?limit=6&around={quote('.codex-implementation-events.jsonl:12')}",
    )
    assert [m["line"] for m in around["messages"]] == [9, 10, 11, 12, 13, 14]
    _, kinds = get_json(
        web, f"/api/agents/runs/{run}/messages?kind=tool_call,tool_result&agent=implementation"
    )
    assert {m["kind"] for m in kinds["messages"]} == {"tool_call", "tool_result"} and len(
        kinds["messages"]
    ) == 10
    _, none = get_json(web, f"/api/agents/runs/{run}/messages?agent=reviewer")
    assert none["messages"] == []
    assert tail["high"] >= max(m["id"] for m in tail["messages"])


def test_general_messages_filter_by_time_range_and_page(web: ConsumerProcess, dsn: str) -> None:
    run = uid()
    bodies = bodies_for(run, 6)
    for i, body in enumerate(bodies):
        body["timestamp"] = f"2030-01-01T00:00:0{i}Z"
    asyncio.run(insert(dsn, rows_for(bodies)))
    status, page = get_json(
        web, "/api/agents/general/messages?since=2030-01-01T00:00:02Z&until=2030-01-01T00:00:05Z&limit=2"
    )
    assert status == 200 and [m["line"] for m in page["messages"]] == [3, 4] and page["more_after"]
    _, rest = get_json(
        web,
        f"/api/agents/general/messages?since=2030-01-01T00:00:02Z&until=2030-01-01T00:00:05Z&after={page['last']}",
    )
    assert [m["line"] for m in rest["messages"]] == [5]
    assert all(m["channel"] == "general" for m in page["messages"] + rest["messages"])


def test_runs_list_newest_first_with_summary_status_and_namespace_filter(
    web: ConsumerProcess, dsn: str
) -> None:
    ns = f"ns-{uuid.uuid4().hex[:6]}"
    old, new = uid(), uid()
    old_bodies = bodies_for(old, 3, namespace=ns)
    for b in old_bodies:
        b["timestamp"] = "2020-01-01T00:00:00Z"
    new_bodies = bodies_for(new, 4, namespace=ns)
    new_bodies[-1]["kind"] = "tool_result"
    new_bodies[-1]["tool"] = {"name": "command_execution", "exit_code": 2, "status": "failed"}
    asyncio.run(insert(dsn, rows_for(old_bodies + new_bodies)))
    status, doc = get_json(web, f"/api/agents/runs?namespace={ns}")
    assert status == 200
    assert [r["workflow_uid"] for r in doc["runs"]] == [new, old]
    fresh, stale = doc["runs"]
    assert fresh["status"] == "running" and stale["status"] == "stale"
    assert fresh["messages"] == 4 and fresh["failures"] == 1 and fresh["agents"] == ["implementation"]
    assert fresh["links"]["page"] == f"/agents/{new}" and fresh["namespace"] == ns
    _, first = get_json(web, f"/api/agents/runs?namespace={ns}&limit=1")
    _, second = get_json(web, f"/api/agents/runs?namespace={ns}&limit=1&cursor={first['next']}")
    assert [r["workflow_uid"] for r in first["runs"] + second["runs"]] == [new, old] and second[
        "next"
    ] is None


def test_outcome_of_the_last_turn_is_the_run_status(web: ConsumerProcess, dsn: str) -> None:
    ok, bad = uid(), uid()
    done = bodies_for(ok, 2)
    done[-1]["kind"], done[-1]["attrs"] = "status", {"event_type": "turn.completed"}
    failed = bodies_for(bad, 2)
    failed[-1]["kind"], failed[-1]["attrs"] = "error", {"event_type": "turn.failed"}
    asyncio.run(insert(dsn, rows_for(done + failed)))
    _, doc = get_json(web, f"/api/agents/runs?uid={ok},{bad}")
    assert {r["workflow_uid"]: r["status"] for r in doc["runs"]} == {ok: "succeeded", bad: "failed"}


def test_transcript_downloads_as_markdown_and_jsonl(web: ConsumerProcess, dsn: str) -> None:
    run = uid()
    bodies = bodies_for(run, 4)
    bodies[0]["content"] = "**bold** and `code`"
    asyncio.run(insert(dsn, rows_for(bodies)))
    status, headers, body = http(web, f"/api/agents/runs/{run}/transcript.jsonl")
    assert status == 200 and "attachment" in headers["content-disposition"]
    lines = [orjson.loads(x) for x in body.splitlines()]
    assert [x["line"] for x in lines] == [1, 2, 3, 4] and all(x["channel"] == "run" for x in lines)
    assert "html" not in lines[0]
    status, headers, body = http(web, f"/api/agents/runs/{run}/transcript.md")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/markdown")
    assert text.startswith(f"# Transcript of run {run}") and "**bold** and `code`" in text
    assert text.index("### 1 ") < text.index("### 2 ") < text.index("### 3 ")


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/agents/events", "runId"),
        ("/api/agents/events?runId=x&channel=general", "channel"),
        ("/api/agents/events?channel=private", "channel"),
        ("/api/agents/events?channel=general&kind=DROP%20TABLE", "kind"),
        ("/api/agents/events?channel=general&lastEventId=abc", "lastEventId"),
        ("/api/agents/events?channel=general&history=-1", "history"),
        ("/api/agents/general/messages?limit=0", "limit"),
        ("/api/agents/general/messages?limit=x", "limit"),
        ("/api/agents/general/messages?after=not-a-cursor", "after"),
        ("/api/agents/general/messages?since=yesterday", "since"),
        ("/api/agents/general/messages?since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z", "until"),
        ("/api/agents/runs?limit=1000000", "limit"),
        ("/api/agents/runs?cursor=%%%", "cursor"),
    ],
)
def test_bad_parameters_get_a_400_naming_them(web: ConsumerProcess, path: str, parameter: str) -> None:
    status, doc = get_json(web, path)
    assert status == 400, doc
    assert doc["parameter"] == parameter and parameter in doc["error"]


def test_bad_last_event_id_header_is_named(web: ConsumerProcess) -> None:
    status, doc = get_json(web, "/api/agents/events?channel=general", headers={"Last-Event-ID": "-5"})
    assert status == 400 and doc["parameter"] == "Last-Event-ID"


@pytest.mark.parametrize(
    "path",
    [
        "/api/agents/events?runId=no-such-run",
        "/api/agents/runs/no-such-run",
        "/api/agents/runs/no-such-run/messages",
        "/api/agents/runs/no-such-run/transcript.md",
    ],
)
def test_unknown_runs_get_a_404(web: ConsumerProcess, path: str) -> None:
    status, doc = get_json(web, path)
    assert status == 404 and "no-such-run" in doc["error"]


def test_openapi_document_lists_the_api(web: ConsumerProcess) -> None:
    status, doc = get_json(web, "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {"/api/agents/events", "/api/agents/runs", "/api/agents/runs/{run_id}/messages"} <= set(
        doc["paths"]
    )


def test_responses_carry_a_csp_without_unsafe_inline(web: ConsumerProcess) -> None:
    for path in ("/agents", "/api/agents/runs"):
        status, headers, _ = http(web, path)
        csp = headers["content-security-policy"]
        assert status == 200 and "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_agent_message_html_is_rendered_inert(web: ConsumerProcess, dsn: str) -> None:
    run = uid()
    (body,) = bodies_for(run, 1)
    body["kind"] = "message"
    body["content"] = "<script>alert(1)</script> <img src=x onerror=alert(2)> [x](javascript:alert(3)) **ok**"
    asyncio.run(insert(dsn, rows_for([body], general=False)))
    _, page = get_json(web, f"/api/agents/runs/{run}/messages")
    html = page["messages"][0]["html"]
    assert "<script" not in html and "<img" not in html and "href" not in html
    assert "&lt;script&gt;" in html and "<strong>ok</strong>" in html


async def test_compressed_stream_ends_with_its_checksum_when_the_server_stops(
    dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    c = start_web(dsn, tmp_path_factory.mktemp("web-stop"))
    run = uid()
    try:
        wait_live(c)
        await insert(dsn, rows_for(bodies_for(run, 3), general=False))
        client = await SseClient.connect(url(c, f"/api/agents/events?runId={run}"), compressed=True)
        assert len(await client.events(3)) == 3
        await insert(dsn, rows_for(bodies_for(run, 400, start=4), general=False))
        assert [e.data["line"] for e in await client.events(400)] == list(range(4, 404))
        sent = [
            ln for ln in c.get("/metrics").splitlines() if ln.startswith("agent_comms_web_sse_bytes_total")
        ]
        deflated = [float(ln.split()[-1]) for ln in sent if 'encoding="deflate"' in ln]
        # Counted before each write, so at least what the client has read.
        assert deflated and deflated[0] >= client.wire_bytes > 0, sent
        assert client.wire_bytes * 4 < client.plain_bytes, "these rows shrink more than 4x"
        await asyncio.to_thread(stop, c)
        with pytest.raises(EOFError):
            await client.next_event(timeout_s=10)
        assert client.ended_cleanly, "final block and a matching Adler-32 before the end"
        await client.close()
    finally:
        stop(c)


async def test_no_sse_compression_serves_plain_text_to_every_client(
    dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    c = start_web(dsn, tmp_path_factory.mktemp("web-plain"), env={"AGENT_COMMS_SSE_COMPRESSION": "false"})
    run = uid()
    try:
        wait_live(c)
        await insert(dsn, rows_for(bodies_for(run, 2), general=False))
        client = await SseClient.connect(url(c, f"/api/agents/events?runId={run}"), compressed=True)
        try:
            assert "content-encoding" not in client.headers
            assert [e.data["line"] for e in await client.events(2)] == [1, 2]
        finally:
            await client.close()
    finally:
        stop(c)


async def test_sse_rows_carry_json_columns_exactly_as_the_json_api_does(
    web: ConsumerProcess, dsn: str
) -> None:
    """The live path embeds `tool` and `attrs` as Postgres wrote them (store/feed.py), unparsed."""
    run = uid()
    (body,) = bodies_for(run, 1)
    body["tool"] = {"name": "shell", "arguments": {"cmd": ["ls", "-la"], "quote": 'say "hi"\u2028é'}}
    body["attrs"] = {"usage": {"tokens": 2**60 + 1, "ratio": 0.5}, "nested": [[], {}]}
    body["future_field"] = {"kept": True}  # an unknown field of a newer schema: stored in `extra`
    await insert(dsn, rows_for([body], general=False))
    client = await SseClient.connect(url(web, f"/api/agents/events?runId={run}"), compressed=True)
    try:
        (event,) = await client.events(1)
    finally:
        await client.close()
    _, page = get_json(web, f"/api/agents/runs/{run}/messages?limit=10")
    (listed,) = page["messages"]
    listed.pop("html", None)
    assert event.data == listed
    assert event.data["attrs"]["usage"]["tokens"] == 2**60 + 1, "an integer, not a rounded float"
    assert event.data["tool"] == body["tool"] and event.data["future_field"] == {"kept": True}


def live_reads(c: ConsumerProcess) -> float:
    for ln in c.get("/metrics").splitlines():
        if ln.startswith("agent_comms_web_live_reads_total"):
            return float(ln.split()[-1])
    raise AssertionError("agent_comms_web_live_reads_total not exported")


async def test_steady_commits_reach_clients_in_batches_of_the_batch_interval(
    dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    c = start_web(dsn, tmp_path_factory.mktemp("web-batch"), "--live-batch-interval", "0.6")
    run = uid()
    try:
        wait_live(c)
        await insert(dsn, rows_for(bodies_for(run, 1), general=False))
        client = await SseClient.connect(url(c, f"/api/agents/events?runId={run}&history=1"))
        try:
            assert [e.data["line"] for e in await client.events(1)] == [1]
            await asyncio.sleep(1.0)  # quiet: the next notification is read at once
            before = live_reads(c)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await insert(dsn, rows_for(bodies_for(run, 1, start=2), general=False))
            (first,) = await client.events(1)
            assert loop.time() - started < 0.4, "a first commit after a quiet spell is not held back"
            for line in range(3, 11):  # eight more commits, 50 ms apart: within ~0.4 s
                await asyncio.sleep(0.05)
                await insert(dsn, rows_for(bodies_for(run, 1, start=line), general=False))
            rest = await client.events(8, timeout_s=5)
            assert [e.data["line"] for e in [first, *rest]] == list(range(2, 11))
            reads = live_reads(c) - before
            assert 2 <= reads <= 3, f"{reads} reads for nine commits in ~0.45 s with a 0.6 s interval"
        finally:
            await client.close()
    finally:
        stop(c)


async def test_json_transcripts_and_pages_are_gzipped_for_clients_that_accept_it(
    web: ConsumerProcess, dsn: str
) -> None:
    run = uid()
    await insert(dsn, rows_for(bodies_for(run, 40), general=False))
    for path in (
        f"/api/agents/runs/{run}/messages?limit=40",
        f"/api/agents/runs/{run}/transcript.jsonl",
        f"/api/agents/runs/{run}/transcript.md",
        "/openapi.json",
        "/static/feed.js",
    ):
        plain_status, plain_headers, plain = http(web, path)
        status, headers, packed = http(web, path, headers={"Accept-Encoding": "gzip"})
        assert plain_status == status == 200, path
        assert "content-encoding" not in {k.lower() for k in plain_headers}, path
        assert headers.get("content-encoding") == "gzip", (path, headers)
        assert gzip.decompress(packed) == plain and len(packed) * 2 < len(plain), path
    # The SSE stream is left to compress itself (deflate): gzip alone is not offered there.
    client = await SseClient.connect(
        url(web, f"/api/agents/events?runId={run}"), headers={"Accept-Encoding": "gzip"}
    )
    try:
        assert "content-encoding" not in client.headers
        assert len(await client.events(40)) == 40
    finally:
        await client.close()

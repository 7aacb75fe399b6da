"""The pages in real headless Chromium, fed by the real live path: a file line -> the publisher
-> NATS JetStream -> `agent-comms consume` (ingest and web in one process) -> Postgres -> SSE.

Screenshots of every page go to test-output/screenshots/ (look at them).
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from agent_comms.embedded import EmbeddedNats
from tests.integration.conftest import PgServer, fresh_database
from tests.support.ingest import ConsumerProcess, apply_repo_resources, wait_for
from tests.support.publisher import IDENTITY, PublisherProcess, start_publisher
from tests.support.web import get_json, start_web, stop

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "codex-run"
SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UID = IDENTITY["WORKFLOW_UID"]
EVENTS = ".codex-implementation-events.jsonl"
LOG = ".codex-implementation-agent.log"
LIVE_WITHIN_S = 2.0

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install chromium"
)


@pytest.fixture(scope="module")
def stack(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Postgres, NATS with the repo's stream and consumer, the consumer, and a publisher on a copy
    of the recorded run; the module's tests append lines to its files."""
    work = tmp_path_factory.mktemp("pages")
    watch = work / "workspace"
    watch.mkdir()
    for name in (EVENTS, LOG):
        shutil.copy(EXAMPLE / name, watch / name)
    with fresh_database(pg_server.admin_dsn) as dsn:
        nats = EmbeddedNats(work / "nats").start()
        consumer: ConsumerProcess | None = None
        publisher: PublisherProcess | None = None
        try:
            apply_repo_resources(nats.url)
            consumer = start_web(dsn, work, nats_url=nats.url)
            consumer.wait_ready(30)
            publisher = start_publisher(watch, nats.url, log_dir=work)
            wait_for(lambda: _messages(consumer) >= 109, 30, "the recorded run stored", consumer)
            yield {"web": consumer, "watch": watch, "base": f"http://127.0.0.1:{consumer.port}"}
        finally:
            if publisher is not None:
                publisher.terminate(30)
            if consumer is not None:
                stop(consumer)
            nats.kill()


def _messages(c: ConsumerProcess) -> int:
    status, doc = get_json(c, f"/api/agents/runs/{UID}")
    return int(doc["summary"]["messages"]) if status == 200 else 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    problems: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            problems.append(f"console: {msg.text}")

    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.problems = problems  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert problems == [], "the page logged errors or opened a dialog"


def append(stack: dict[str, Any], *lines: dict[str, Any] | str, file: str = EVENTS) -> float:
    """Append lines to a watched file; returns the time they were written."""
    data = "".join((ln if isinstance(ln, str) else orjson.dumps(ln).decode()) + "\n" for ln in lines)
    with open(stack["watch"] / file, "a", encoding="utf-8") as f:
        f.write(data)
    return time.monotonic()


def agent_message(text: str) -> dict[str, Any]:
    return {
        "type": "item.completed",
        "item": {"id": f"item_{uuid.uuid4().hex[:6]}", "type": "agent_message", "text": text},
    }


def command(cmd: str, output: str, exit_code: int) -> dict[str, Any]:
    return {
        "type": "item.completed",
        "item": {
            "id": f"item_{uuid.uuid4().hex[:6]}",
            "type": "command_execution",
            "command": cmd,
            "aggregated_output": output,
            "exit_code": exit_code,
            "status": "completed" if exit_code == 0 else "failed",
        },
    }


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def open_run(page: Page, stack: dict[str, Any], suffix: str = "") -> None:
    page.goto(f"{stack['base']}/agents/{UID}{suffix}")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)


def test_each_page_loads_without_console_errors(page: Page, stack: dict[str, Any]) -> None:
    page.goto(f"{stack['base']}/agents")
    expect(page.locator(f"tr[data-uid='{UID}'] .status")).to_have_text("succeeded")
    expect(page.locator(f"tr[data-uid='{UID}'] td.num.bad")).to_have_text("2")
    shot(page, "runs")
    open_run(page, stack)
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("#run-failures")).to_have_text("2")
    expect(page.locator(".card.item-reasoning details, details.reasoning").first).not_to_have_attribute(
        "open", ""
    )
    shot(page, "run")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "run-top")
    open_run(page, stack, "?view=log")
    expect(page.locator("#feed .card.kind-log").first).to_be_visible()
    assert page.locator("#feed .card:not(.kind-log)").count() == 0, "the agent log is its own view"
    shot(page, "run-log")
    page.goto(f"{stack['base']}/agents/general")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)
    expect(page.locator(".card .run-link").first).to_have_text(IDENTITY["WORKFLOW_NAME"])
    shot(page, "general")


def test_an_appended_line_appears_live_on_the_run_and_general_pages(
    browser: Browser, page: Page, stack: dict[str, Any]
) -> None:
    general = browser.new_page(viewport={"width": 1280, "height": 900})
    streams: list[dict[str, str]] = []
    general.on("response", lambda r: streams.append(r.headers) if "/api/agents/events" in r.url else None)
    try:
        open_run(page, stack)
        general.goto(f"{stack['base']}/agents/general")
        expect(general.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)
        # Chromium asks for compression: the live path under test is the compressed one.
        assert streams and streams[0].get("content-encoding") == "deflate", streams
        marker = f"Live marker {uuid.uuid4().hex[:8]}"
        written = append(stack, agent_message(f"**{marker}** arrived"))
        expect(page.locator(".card.kind-message strong", has_text=marker)).to_be_visible(
            timeout=LIVE_WITHIN_S * 1000
        )
        expect(general.locator(".card strong", has_text=marker)).to_be_visible(timeout=LIVE_WITHIN_S * 1000)
        took = time.monotonic() - written
        assert took < LIVE_WITHIN_S, f"took {took:.2f}s"
        shot(general, "general-live")
    finally:
        general.close()


def test_untrusted_markdown_stays_inert(page: Page, stack: dict[str, Any]) -> None:
    open_run(page, stack)
    payload = (
        "XSS probe <script>window.__xss = 1</script> <img src=x onerror='window.__xss = 2'> "
        "[click me](javascript:window.__xss=3) <a href='javascript:window.__xss=4' onclick='window.__xss=5'>a</a>"
    )
    append(stack, agent_message(payload))
    card = page.locator(".card.kind-message", has_text="XSS probe").last
    expect(card).to_be_visible(timeout=5000)
    card.get_by_text("click me", exact=False).click()
    assert page.evaluate("window.__xss") is None
    assert card.locator("script, img, [onerror], [onclick], a[href^='javascript']").count() == 0
    shot(page, "xss")


def test_filters_narrow_the_view_and_live_in_the_url(page: Page, stack: dict[str, Any]) -> None:
    open_run(page, stack)
    total = page.locator("#feed .card").count()
    page.select_option("#f-kind", "tool_result")
    page.click("#filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"kind=tool_result"))
    expect(page.locator("#feed .card").first).to_have_class(re.compile(r"\bkind-tool_result\b"))
    kinds = page.locator("#feed .card").evaluate_all("els => els.map(e => e.className)")
    assert kinds and all("kind-tool_result" in k for k in kinds) and len(kinds) < total
    page.reload()
    expect(page.locator("#f-kind")).to_have_value("tool_result")
    shot(page, "run-filtered")


def test_scrolled_up_new_lines_keep_the_view_and_show_n_new(page: Page, stack: dict[str, Any]) -> None:
    open_run(page, stack)
    page.evaluate("window.scrollTo(0, 300)")
    page.wait_for_timeout(200)
    before = page.evaluate("window.scrollY")
    append(stack, agent_message("one more"), agent_message("and another"), agent_message("and a third"))
    expect(page.locator("#new-count")).to_have_text("3 new ↓", timeout=5000)
    assert page.evaluate("window.scrollY") == before, "the view did not move"
    shot(page, "run-n-new")
    page.click("#new-count")
    page.wait_for_timeout(200)
    assert page.evaluate("window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 80")
    expect(page.locator("#new-count")).to_be_hidden()


def test_a_permalink_opens_on_its_event(page: Page, stack: dict[str, Any]) -> None:
    open_run(page, stack, "#e-implementation-events-40")
    target = page.locator("#e-implementation-events-40")
    expect(target).to_have_class(re.compile(r"\bhighlight\b"))
    expect(target).to_be_in_viewport()
    href = target.locator("a.permalink").get_attribute("href")
    assert href == "#e-implementation-events-40"
    shot(page, "permalink")


def test_a_failed_command_is_marked(page: Page, stack: dict[str, Any]) -> None:
    open_run(page, stack, "#e-implementation-events-52")
    recorded = page.locator("#e-implementation-events-52")
    expect(recorded).to_have_class(re.compile(r"\bfailed\b"))
    expect(recorded.locator(".exit.failed")).to_have_text("exit 1")
    open_run(page, stack)
    append(stack, command("/bin/bash -lc 'pytest -q'", "1 failed, 39 passed", 1))
    live = page.locator(".card.failed", has_text="pytest -q").last
    expect(live.locator(".exit.failed")).to_have_text("exit 1", timeout=5000)
    expect(page.locator("#run-failures")).to_have_text("3", timeout=5000)


def test_a_5000_line_output_is_collapsed_to_head_and_tail(page: Page, stack: dict[str, Any]) -> None:
    open_run(page, stack)
    # Short lines, so the whole output fits the contract's 64 KiB content cap.
    output = "\n".join(f"n{i}" for i in range(1, 5001))
    append(stack, command("/bin/bash -lc 'seq-like'", output, 0))
    card = page.locator(".card", has_text="seq-like").last
    expect(card.locator(".output.collapsed")).to_be_visible(timeout=5000)
    expect(card.locator("button.expand")).to_have_text("+4980 lines")
    head = card.locator("pre.head").inner_text()
    tail = card.locator("pre.tail").inner_text()
    assert head.startswith("n1\nn2\n") and head.endswith("n12") and tail.endswith("n5000")
    assert "n2500" not in card.inner_text()
    card.scroll_into_view_if_needed()
    shot(page, "long-output")
    card.locator("button.expand").click()
    assert "\nn2500\n" in card.locator("pre.full").inner_text()

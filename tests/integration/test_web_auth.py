"""Access: with AGENT_COMMS_API_TOKEN the API and pages need it; without, localhost only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ingest import ConsumerProcess
from tests.support.web import get_json, http, start_web, stop, wait_live

TOKEN = "s3cret-token-for-tests-0123456789"


@pytest.fixture
def protected(database: str, tmp_path: Path) -> Iterator[ConsumerProcess]:
    c = start_web(database, tmp_path, env={"AGENT_COMMS_API_TOKEN": TOKEN}, host=None)
    try:
        wait_live(c)
        yield c
    finally:
        stop(c)


def test_with_a_token_the_api_and_pages_require_it_and_probes_stay_open(protected: ConsumerProcess) -> None:
    starting = protected.events("consumer_starting")[0]
    assert starting["http"].startswith("http://0.0.0.0:"), "a token protects it: listen everywhere"
    assert protected.events("http_localhost_only") == []
    for path in ("/healthz", "/readyz", "/metrics", "/login", "/static/style.css"):
        assert http(protected, path)[0] == 200, path
    status, doc = get_json(protected, "/api/agents/runs")
    assert status == 401 and "Bearer" in doc["error"]
    assert get_json(protected, "/api/agents/events?channel=general")[0] == 401
    assert get_json(protected, "/api/agents/runs", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert get_json(protected, "/api/agents/runs", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    status, headers, _ = http(protected, "/agents/general?kind=error")
    assert status == 303 and headers["location"] == "/login?next=%2Fagents%2Fgeneral%3Fkind%3Derror"


def test_the_login_form_sets_a_session_cookie_that_opens_pages(protected: ConsumerProcess) -> None:
    status, _, _ = http(protected, "/login", data=b"token=nope&next=/agents", method="POST")
    assert status == 401
    status, headers, _ = http(
        protected, "/login", data=f"token={TOKEN}&next=//evil.example/x".encode(), method="POST"
    )
    assert status == 303 and headers["location"] == "/agents", "never redirects off the site"
    cookie = headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and TOKEN not in cookie
    session = cookie.split(";", 1)[0]
    assert http(protected, "/agents", headers={"Cookie": session})[0] == 200
    assert get_json(protected, "/api/agents/runs", headers={"Cookie": session})[0] == 200
    assert get_json(protected, "/api/agents/runs", headers={"Cookie": "agent_comms_session=forged"})[0] == 401


def test_without_a_token_it_listens_on_localhost_only_and_says_so(database: str, tmp_path: Path) -> None:
    c = start_web(database, tmp_path, host=None)
    try:
        wait_live(c)
        assert c.events("consumer_starting")[0]["http"].startswith("http://127.0.0.1:")
        (warning,) = c.events("http_localhost_only")
        assert "AGENT_COMMS_API_TOKEN" in warning["fix"] and "--http-host" in warning["fix"]
        assert get_json(c, "/api/agents/runs")[0] == 200
    finally:
        stop(c)


def test_a_short_token_is_refused_at_start_with_the_fix(database: str, tmp_path: Path) -> None:
    c = start_web(database, tmp_path, env={"AGENT_COMMS_API_TOKEN": "short"})
    assert c.proc.wait(30) == 2
    assert "AGENT_COMMS_API_TOKEN is shorter than 16 characters" in c.log()

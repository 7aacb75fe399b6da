"""The pages: server-rendered HTML shells; small ES modules in static/ fill them from the API.

Templates are `string.Template` files in templates/; every value substituted into them is
HTML-escaped here (the run id in a URL is untrusted too). No build step: the browser loads the
modules as they are.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from string import Template
from typing import Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from agent_comms import __version__

NAV: Final = {"runs": "/agents", "general": "/agents/general"}


@cache
def _template(name: str) -> Template:
    text = resources.files("agent_comms.web").joinpath("templates", name).read_text("utf-8")
    return Template(text)


def _page(title: str, script: str, main: str, *, nav: str | None, status_code: int = 200) -> Response:
    links = "".join(
        f'<a href="{href}"{" aria-current=page" if key == nav else ""}>{label}</a>'
        for key, href, label in (
            ("runs", NAV["runs"], "Runs"),
            ("general", NAV["general"], "General channel"),
        )
    )
    body = _template("layout.html").substitute(
        title=html.escape(title),
        version=html.escape(__version__),
        script=html.escape(script),
        nav=links,
        main=main,
    )
    return HTMLResponse(body, status_code=status_code)


def runs_page(_: Request) -> Response:
    return _page("Runs", "runs.js", _template("runs.html").substitute(), nav="runs")


def general_page(_: Request) -> Response:
    return _page("General channel", "general.js", _template("general.html").substitute(), nav="general")


def run_page(request: Request) -> Response:
    ref = str(request.path_params["run_id"])
    q = quote(ref, safe="")
    main = _template("run.html").substitute(
        run=html.escape(ref),
        run_url=html.escape(q),
    )
    return _page(f"Run {ref}", "run.js", main, nav=None)


def render_login(*, next_path: str, error: str | None, status_code: int = 200) -> Response:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    main = _template("login.html").substitute(next=html.escape(next_path), error=message)
    return _page("Sign in", "login.js", main, nav=None, status_code=status_code)

"""Access to transcripts: with AGENT_COMMS_API_TOKEN set, every API call and page needs it.

Either `Authorization: Bearer <token>` (scripts, other services) or a session cookie set by the
login form (people). The cookie holds an HMAC of the token, not the token, and every comparison
is constant-time. /healthz, /readyz, /metrics, /login and /static stay open (probes, Prometheus,
and the login page's own assets). Without a token this middleware is not installed, and the
server listens on 127.0.0.1 unless --http-host says otherwise (see settings.bind_host).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import parse_qs, quote

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_comms.web.pages import render_login

COOKIE: Final = "agent_comms_session"
SESSION_MAX_AGE_S: Final = 12 * 3600
OPEN_PATHS: Final = frozenset(("/healthz", "/readyz", "/metrics", "/login", "/logout"))
OPEN_PREFIXES: Final = ("/static/",)
MAX_FORM_BYTES: Final = 8192


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"agent-comms-session-v1", hashlib.sha256).hexdigest()


def safe_next(target: str | None) -> str:
    """Only a path on this site: never `//host` or `https://host` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/agents"
    return target


class TokenAuth:
    """ASGI middleware: 401 for the API, a redirect to /login for pages, when the token is missing."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()
        self.session = session_value(token).encode()

    def is_authorized(self, headers: Headers, cookies: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), self.token):
            return True
        cookie = cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.session)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.is_authorized(request.headers, request.cookies):
            await self.app(scope, receive, send)
            return
        response: Response
        if path.startswith("/api/") or path == "/openapi.json":
            response = JSONResponse(
                {
                    "error": "authentication required: send `Authorization: Bearer <AGENT_COMMS_API_TOKEN>` "
                    "or sign in at /login"
                },
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="agent-comms"'},
            )
        else:
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        await response(scope, receive, send)


class Login:
    """GET shows the form, POST checks the token and sets the session cookie."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    async def form(self, request: Request) -> Response:
        if self.token is None:
            return RedirectResponse("/agents", status_code=303)
        return render_login(next_path=safe_next(request.query_params.get("next")), error=None)

    async def submit(self, request: Request) -> Response:
        if self.token is None:
            return RedirectResponse("/agents", status_code=303)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return JSONResponse({"error": "form too large"}, status_code=413)
        form = parse_qs(body.decode("utf-8", "replace"))
        given = (form.get("token") or [""])[0].strip()
        target = safe_next((form.get("next") or [""])[0])
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return render_login(next_path=target, error="That token is not right.", status_code=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            session_value(self.token),
            max_age=SESSION_MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=_is_https(request),
            path="/",
        )
        return response

    async def logout(self, _: Request) -> Response:
        response = RedirectResponse("/login" if self.token else "/agents", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response


def _is_https(request: Request) -> bool:
    # Behind a TLS-terminating proxy the scheme arrives in X-Forwarded-Proto.
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"

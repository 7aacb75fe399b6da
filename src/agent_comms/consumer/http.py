"""The consumer's HTTP server: /healthz, /readyz and /metrics, up from the first second.

The web issue adds the API, SSE and pages to the same app (`create_app(..., routes=...)`).
uvicorn is embedded without its signal handling: the process has one stop event, and the
server is told to exit after the ingest has drained, so probes answer during the drain.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Generator, Sequence

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from agent_comms.consumer.health import Health
from agent_comms.core.errors import ConfigError


def health_routes(health: Health, registry: CollectorRegistry) -> list[BaseRoute]:
    async def healthz(_: Request) -> Response:
        # Liveness: the event loop answers. Dependencies are /readyz's business: a restart
        # does not bring Postgres back.
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        return JSONResponse(health.to_json(), status_code=200 if health.is_ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def create_app(health: Health, registry: CollectorRegistry, routes: Sequence[BaseRoute] = ()) -> Starlette:
    return Starlette(routes=[*health_routes(health, registry), *routes])


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a taken port fails at start with the flag to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--http-port={port} on {host}: {exc.strerror}; choose another port") from exc
    sock.set_inheritable(True)
    return sock


class HttpServer(uvicorn.Server):
    """uvicorn without its own signal handlers; `should_exit = True` ends `serve()`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def http_server(app: Starlette, *, graceful_timeout_s: float) -> HttpServer:
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=max(1, round(graceful_timeout_s)),
    )
    return HttpServer(config)

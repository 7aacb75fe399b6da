"""Query parameters of the API: parsed once, and a bad one becomes a 400 that names it."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent_comms.store.feed import Filters

MAX_LIMIT: Final = 1000
_KIND: Final = re.compile(r"^[a-z_]{1,32}$")
_MAX_VALUE_CHARS: Final = 256


class BadParameter(Exception):
    """A query parameter (or header) the API cannot use: 400, naming it and saying what fits."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class NotFound(Exception):
    """An unknown run (or other resource): 404 with what was looked for."""


async def bad_parameter(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadParameter)
    return JSONResponse({"error": str(exc), "parameter": exc.parameter}, status_code=400)


async def not_found(_: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=404)


def text(params: QueryParams, name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > _MAX_VALUE_CHARS:
        raise BadParameter(name, f"longer than {_MAX_VALUE_CHARS} characters")
    return value


def csv(params: QueryParams, name: str) -> tuple[str, ...]:
    """A comma-separated list (the parameter may also repeat)."""
    values: list[str] = []
    for raw in params.getlist(name):
        if len(raw) > _MAX_VALUE_CHARS * 4:
            raise BadParameter(name, "too long")
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return tuple(dict.fromkeys(values))


def kinds(params: QueryParams, name: str = "kind") -> tuple[str, ...]:
    values = csv(params, name)
    for v in values:
        if not _KIND.match(v):
            raise BadParameter(
                name, f"{v!r} is not a kind (message, tool_call, tool_result, status, error, log)"
            )
    return values


def integer(params: QueryParams, name: str, *, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"{raw[:40]!r} is not an integer") from None
    if not low <= value <= high:
        raise BadParameter(name, f"{value} is out of range {low}..{high}")
    return value


def timestamp(params: QueryParams, name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise BadParameter(
            name, f"{raw[:64]!r} is not an RFC 3339 time (e.g. 2026-11-25T13:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def filters(params: QueryParams) -> Filters:
    since, until = timestamp(params, "since"), timestamp(params, "until")
    if since is not None and until is not None and since >= until:
        raise BadParameter("until", "must be later than since")
    return Filters(agents=csv(params, "agent"), kinds=kinds(params), since=since, until=until)


def last_event_id(request: Request) -> int | None:
    """`Last-Event-ID` (what EventSource sends on reconnect) wins over the `lastEventId` parameter."""
    header = request.headers.get("last-event-id")
    name, raw = (
        ("Last-Event-ID", header) if header else ("lastEventId", request.query_params.get("lastEventId"))
    )
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadParameter(name, f"{raw[:40]!r} is not an event id (a non-negative integer)") from None
    if value < 0:
        raise BadParameter(name, "must not be negative")
    return value


def encode_cursor(key: tuple[Any, ...]) -> str:
    """An opaque page cursor: the keyset position, base64url JSON."""
    doc = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=")


def decode_cursor(params: QueryParams, name: str, types: tuple[type, ...]) -> tuple[Any, ...] | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadParameter(name, "not a cursor returned by this API") from None
    if not isinstance(doc, list) or len(doc) != len(types):
        raise BadParameter(name, "not a cursor returned by this API")
    out: list[Any] = []
    for value, kind in zip(doc, types, strict=True):
        if kind is datetime:
            try:
                out.append(datetime.fromisoformat(str(value)))
            except ValueError:
                raise BadParameter(name, "not a cursor returned by this API") from None
        elif not isinstance(value, kind) or isinstance(value, bool):
            raise BadParameter(name, "not a cursor returned by this API")
        else:
            out.append(value)
    return tuple(out)

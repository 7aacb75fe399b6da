"""`/openapi.json`: the API described by hand (OpenAPI 3.1), kept beside the routes it describes."""

from __future__ import annotations

from typing import Any

from agent_comms import __version__


def _param(name: str, where: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "description": description, "schema": schema or {"type": "string"}}


_FILTERS = [
    _param("agent", "query", "Agent ids, comma-separated."),
    _param("kind", "query", "Kinds, comma-separated: message, tool_call, tool_result, status, error, log."),
    _param(
        "since", "query", "RFC 3339 time; messages at or after it.", {"type": "string", "format": "date-time"}
    ),
    _param("until", "query", "RFC 3339 time; messages before it.", {"type": "string", "format": "date-time"}),
]
_PAGING = [
    _param("limit", "query", "Rows per page (1..1000, default 200).", {"type": "integer"}),
    _param("after", "query", "Cursor (`last` of a page): the rows after it."),
    _param("before", "query", "Cursor (`first` of a page): the rows before it."),
    _param(
        "tail", "query", "`1`: without a cursor, the last rows instead of the first.", {"type": "boolean"}
    ),
]
_RUN_ID = _param("run_id", "path", "A workflow_uid, or else a run_id (every workflow carrying it).")
_ERRORS = {
    "400": {"description": "A bad parameter; `parameter` names it.", "content": {"application/json": {}}},
    "401": {"description": "AGENT_COMMS_API_TOKEN is set and the request has neither bearer nor session."},
    "404": {"description": "No workflow_uid or run_id with stored messages."},
    "503": {
        "description": "Postgres is unreachable (or, for SSE, the live fan-out is not listening); retry after Retry-After."
    },
}
_PAGE = {
    "type": "object",
    "properties": {
        "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
        "first": {"type": ["string", "null"]},
        "last": {"type": ["string", "null"]},
        "more_before": {"type": "boolean"},
        "more_after": {"type": "boolean"},
        "high": {"type": "integer", "description": "Resume SSE from here (lastEventId): no gap."},
    },
}


def _get(summary: str, parameters: list[dict[str, Any]], content: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": parameters, "responses": {"200": content, **_ERRORS}}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def openapi_document() -> dict[str, Any]:
    sse = {
        "description": "text/event-stream: `id:` is the row id (the cursor), `data:` the row as JSON. "
        "History first (the newest `history` rows, or everything after Last-Event-ID), then live; "
        "`: keepalive` comments in between. Compressed (`Content-Encoding: deflate`) for clients that "
        "send `Accept-Encoding: deflate`, as browsers do.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "agent-comms",
            "version": __version__,
            "description": "Live agent transcripts: runs, messages, SSE. Auth: `Authorization: Bearer "
            "<AGENT_COMMS_API_TOKEN>` when the server has a token.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Message": {
                    "type": "object",
                    "description": "The contract body (DESIGN.md) plus id, arrived_via, stored_at, and html "
                    "(agent messages rendered safely).",
                    "properties": {
                        "id": {"type": "integer"},
                        "message_id": {"type": "string"},
                        "workflow_uid": {"type": "string"},
                        "agent_id": {"type": "string"},
                        "kind": {"type": "string"},
                        "channel": {"type": "string"},
                        "content": {"type": "string"},
                        "source": {"type": "string"},
                        "line": {"type": "integer"},
                        "timestamp": {"type": "string", "format": "date-time"},
                        "html": {"type": "string"},
                    },
                    "additionalProperties": True,
                },
                "Run": {
                    "type": "object",
                    "properties": {
                        "workflow_uid": {"type": "string"},
                        "workflow_name": {"type": "string"},
                        "namespace": {"type": "string"},
                        "run_id": {"type": ["string", "null"]},
                        "agents": {"type": "array", "items": {"type": "string"}},
                        "messages": {"type": "integer"},
                        "failures": {"type": "integer", "description": "Failed commands."},
                        "errors": {"type": "integer"},
                        "first_at": {"type": "string", "format": "date-time"},
                        "last_at": {"type": "string", "format": "date-time"},
                        "elapsed_s": {"type": "number"},
                        "status": {"enum": ["running", "succeeded", "failed", "stale"]},
                        "links": {"type": "object"},
                    },
                },
            },
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/api/agents/events": _get(
                "Live messages of a run or of the general channel (SSE), resumable.",
                [
                    _param("runId", "query", "workflow_uid or run_id; this or channel is required."),
                    _param("channel", "query", "`general`."),
                    _param("agent", "query", "Agent ids, comma-separated."),
                    _param("kind", "query", "Kinds, comma-separated."),
                    _param("history", "query", "Rows of history without Last-Event-ID.", {"type": "integer"}),
                    _param(
                        "lastEventId", "query", "Resume after this id (the header wins).", {"type": "integer"}
                    ),
                    _param("Last-Event-ID", "header", "Resume after this id.", {"type": "integer"}),
                ],
                sse,
            ),
            "/api/agents/runs": _get(
                "Runs, newest activity first.",
                [
                    _param("namespace", "query", "Only this namespace."),
                    _param("uid", "query", "Only these workflow_uids, comma-separated."),
                    _param("limit", "query", "Runs per page (1..200, default 50).", {"type": "integer"}),
                    _param("cursor", "query", "`next` of the previous page."),
                ],
                _json(
                    {
                        "type": "object",
                        "properties": {
                            "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
                            "next": {"type": ["string", "null"]},
                        },
                    }
                ),
            ),
            "/api/agents/runs/{run_id}": _get(
                "One run: a summary over its workflows, each workflow, its files.", [_RUN_ID], _json({})
            ),
            "/api/agents/runs/{run_id}/messages": _get(
                "A run's messages by (workflow_uid, source, line), paged.",
                [
                    _RUN_ID,
                    *_FILTERS,
                    *_PAGING,
                    _param("around", "query", "`<source>:<line>`: a page centred on that event."),
                ],
                _json(_PAGE),
            ),
            "/api/agents/general/messages": _get(
                "The general channel by (timestamp, workflow_uid, source, line), paged.",
                [*_FILTERS, *_PAGING],
                _json(_PAGE),
            ),
            "/api/agents/runs/{run_id}/transcript.md": _get(
                "The run as Markdown (download).",
                [_RUN_ID, *_FILTERS],
                {"description": "OK", "content": {"text/markdown": {}}},
            ),
            "/api/agents/runs/{run_id}/transcript.jsonl": _get(
                "The run as JSON Lines, one message per line (download).",
                [_RUN_ID, *_FILTERS],
                {"description": "OK", "content": {"application/x-ndjson": {}}},
            ),
            "/api/agents/run-updates": _get(
                "SSE: `event: runs` with the workflow_uids that changed (null: refresh all).", [], sse
            ),
        },
    }

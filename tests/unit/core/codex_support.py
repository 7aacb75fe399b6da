"""Helpers for normalization tests: lines are built by the real `LineSplitter`, never by hand."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import orjson

from agent_comms.core.codex import FileContext, Normalizer, SourceKind, file_context
from agent_comms.core.lines import LineSplitter, RawLine
from agent_comms.core.message import Normalized
from agent_comms.core.redact import Redactor

STEP_ID = "codex-implementation-demo-1234567890"
EVENTS_FILE = ".codex-implementation-events.jsonl"
LOG_FILE = ".codex-implementation-agent.log"


def lines_of(data: bytes, *, max_line_bytes: int = 1 << 20, final: bool = True) -> list[RawLine]:
    """The physical lines of `data`; with `final`, an unterminated last line too (partial)."""
    splitter = LineSplitter(STEP_ID, max_line_bytes=max_line_bytes)
    lines = splitter.feed(data)
    if final:
        rest = splitter.finish()
        if rest is not None:
            lines.append(rest)
    return lines


def one_line(data: bytes, **kw: Any) -> RawLine:
    lines = lines_of(data, **kw)
    assert len(lines) == 1, lines
    return lines[0]


def normalize_event(
    event: Any,
    *,
    ctx: FileContext | None = None,
    normalizer: Normalizer | None = None,
    max_line_bytes: int = 8 << 20,
) -> Normalized:
    """Normalize one events-file line given as a JSON-able value or as the raw bytes of the line."""
    data = event if isinstance(event, bytes) else orjson.dumps(event)
    n = normalizer or Normalizer(Redactor())
    line = one_line(data + b"\n", max_line_bytes=max_line_bytes)
    return n.normalize(SourceKind.EVENTS, line, ctx or file_context(EVENTS_FILE))


def normalize_log(data: bytes, *, normalizer: Normalizer | None = None) -> Normalized:
    n = normalizer or Normalizer(Redactor())
    return n.normalize(SourceKind.AGENT_LOG, one_line(data + b"\n"), file_context(LOG_FILE))


def item(phase: str, **fields: Any) -> dict[str, Any]:
    """A current-format item event: `{"type": "item.<phase>", "item": {...}}`."""
    return {"type": f"item.{phase}", "item": fields}


def legacy(msg_type: str, submission: str = "0", **fields: Any) -> dict[str, Any]:
    """A legacy event: `{"id": <submission>, "msg": {"type": ..., ...}}`."""
    return {"id": submission, "msg": {"type": msg_type, **fields}}


# -- lines that hold secrets, for the golden digests and for the fast-path equivalence tests --------

SECRET_TEXTS: tuple[str, ...] = (
    "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2,
    "gho_" + "Zq8wT1xY4rU7iO0pA3sD6fG9hJ2kL5zX8cV1",
    "ghu_" + "Zq8wT1xY4rU7iO0pA3sD6fG9hJ2kL5zX8cV1",
    "ghs_" + "Zq8wT1xY4rU7iO0pA3sD6fG9hJ2kL5zX8cV1",
    "ghr_" + "Zq8wT1xY4rU7iO0pA3sD6fG9hJ2kL5zX8cV1",
    "github_pat_11ABCDEFG0" + "x" * 10 + "_" + "Q1w2E3r4T5y6U7i8O9p0" * 3,
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
    "ABIAY34FZKBOKMUTVV7A",
    "ACCAY34FZKBOKMUTVV7A",
    "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "secret-access-key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    '"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
    "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "sk-proj-Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0n",
    "sk-" + "A1b2C3d4E5f6G7h8I9j0" * 2,
    "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-AbCd",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLWhlcmU",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXX",
    "postgres://app:Sup3rS3cretPassw0rd@db.internal:5432/app",
    "Authorization: Bearer abc123def456",
    'curl -H "authorization: token 0123456789abcdef"',
    '{"Authorization": "Bearer abc123def456"}',
    "AUTHORIZATION: Basic dXNlcjpwYXNzd29yZA==",
    '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n"}',
    '{"password": "correct horse battery"}',
    '{"passwd":"hunter22","secret":"s3cr3t-value","client_secret":"abcd1234"}',
    '{"api_key": "abcd1234", "apiKey": "abcd1234", "access_token": "tok12345"}',
    '{"refresh_token": "tok12345", "auth_token": "tok12345"}',
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePz\n-----END RSA PRIVATE KEY-----",
    "…cut…\nMIIEowIBAAKCAQ==\n-----END PRIVATE KEY-----\nafter",
    "mysql --password=hunter22 -u root",
    "gh --token=abcd12345 --secret=abcd12345 --api-key=abcd12345",
    "DB_PASSWORD=hunter22 ./run",
    "PASSWD=hunter22 MY_SECRET=abcd1234 GITHUB_TOKEN=abcd1234",
    "OPENAI_API_KEY=abcd1234 APIKEY=abcd1234 AWS_ACCESS_KEY=abcd1234",
)
"""One or more examples of every built-in secret shape (redact.py), as they occur in text."""

SECRET_KEYS: tuple[str, ...] = (
    "password",
    "Client-Secret",
    "X-API-KEY",
    "apiKey",
    "privateKey",
    "AUTHORIZATION",
    "Proxy-Authorization",
    "aws_secret_access_key",
    "refreshToken",
    "x-auth-token",
    "secret",
    "Passwd",
)
"""Member names that make their string value a secret, whatever the value looks like."""


def _escaped(text: str, which: set[int] | None = None) -> bytes:
    """The inside of a JSON string literal for `text`, characters at `which` (all if None) as `\\u`."""
    return "".join(
        f"\\u{ord(c):04x}"
        if (which is None or i in which) and ord(c) < 0x10000
        else orjson.dumps(c)[1:-1].decode()
        for i, c in enumerate(text)
    ).encode()


def json_spellings(event: Any, secret: str, rng: random.Random, *, escaped: bool = True) -> list[bytes]:
    """The event as JSON writers write it: compact, spaced and ASCII-only, with `\\/`, and with the
    secret (where it occurs whole) written with all, or one, of its characters as `\\u` escapes."""
    compact = orjson.dumps(event)
    spaced = json.dumps(event)
    out = [compact, spaced.encode(), spaced.replace("/", "\\/").encode()]
    inner = orjson.dumps(secret)[1:-1]
    if escaped and inner in compact:
        out.append(compact.replace(inner, _escaped(secret), 1))
        out.append(compact.replace(inner, _escaped(secret, {rng.randrange(len(secret))}), 1))
    return out


def noisy(secret: str, rng: random.Random) -> list[str]:
    """The secret with something cleaning removes put into it (or, for `\\r`, in front of it)."""
    i = rng.randrange(1, len(secret))
    return [
        secret[:i] + "\x00" + secret[i:],
        secret[:i] + "\x1b[0m" + secret[i:],
        secret[:i] + "\x7f" + secret[i:],
        "progress 10%\r" + secret,
        secret[:i] + "\b" + secret[i:],
    ]


def events_holding(text: str, rng: random.Random) -> list[Any]:
    """Events of every format that carry `text` in a different field each."""
    words = text.split(" ")
    cut = rng.randrange(1, len(text))
    return [
        item("completed", id="item_1", type="agent_message", text=f"Found {text} in the logs."),
        item("completed", id="item_2", type="reasoning", text=f"**Check**\n\n{text}\n"),
        item("started", id="item_3", type="command_execution", command=words, status="in_progress"),
        item("started", id="item_3", type="command_execution", command=f"bash -lc '{text}'"),
        item(
            "completed",
            id="item_3",
            type="command_execution",
            command="bash -lc 'env'",
            aggregated_output=f"line one\n{text}\nline three\n",
            exit_code=0,
            status="completed",
        ),
        item(
            "started",
            id="item_4",
            type="mcp_tool_call",
            server=text[:cut],
            tool=text[cut:],
            arguments={"query": text, "nested": {"deep": [text]}},
            status="in_progress",
        ),
        item(
            "completed",
            id="item_4",
            type="mcp_tool_call",
            server="github",
            tool="search",
            result={"content": [{"type": "text", "text": text}], "structured_content": None},
            status="completed",
        ),
        item("completed", id="item_5", type="web_search", query=text),
        item("completed", id="item_6", type="file_change", changes=[{"path": text, "kind": "add"}]),
        item("updated", id="item_7", type="todo_list", items=[{"text": text, "completed": False}]),
        item("completed", id="item_8", type="error", message=text),
        {"type": "turn.failed", "error": {"message": text}},
        {"type": "some.future.event", "payload": {"a": [{"b": text}]}},
        legacy("exec_command_begin", call_id="c1", command=words, cwd="/work"),
        legacy("exec_command_end", call_id="c1", stdout=text, stderr="", exit_code=1),
        legacy("user_message", message=text),
        legacy(
            "exec_command_output_delta",
            call_id="c1",
            stream="stdout",
            chunk=base64.b64encode(text.encode()).decode(),
        ),
        legacy(
            "mcp_tool_call_begin",
            call_id="c2",
            invocation={"server": text[:cut], "tool": text[cut:], "arguments": {"q": text}},
        ),
        legacy("token_count", input_tokens=1, output_tokens=2, note=text),
        {"prompt": text},
        {"model": "gpt-5", "workdir": text},
    ]


def events_keyed(key: str) -> list[Any]:
    value = "hunter22-value"
    return [
        item(
            "started",
            id="item_9",
            type="mcp_tool_call",
            server="s",
            tool="t",
            arguments={key: value, "PassWord": "mixed-case", "n": 1},
            status="in_progress",
        ),
        {"type": "some.future.event", "payload": {"config": {key: value}}},
        legacy("token_count", input_tokens=1, output_tokens=2, **{key: value}),
        {
            "type": "item.completed",
            "item": {"id": "i", "type": "web_search", "query": "q", "action": {"type": "search", key: value}},
        },
    ]


def secret_lines(seed: int = 7) -> list[bytes]:
    """Events lines (newline-terminated) that hold every secret shape, in every field and JSON spelling.

    Deterministic for a seed. Secrets are also split across argv items and `server`/`tool`, hidden
    behind control characters that cleaning removes, and behind JSON escapes.
    """
    rng = random.Random(seed)
    lines: list[bytes] = []
    for secret in SECRET_TEXTS:
        for event in events_holding(secret, rng):
            lines.extend(v + b"\n" for v in json_spellings(event, secret, rng))
        for text in noisy(secret, rng):
            for event in rng.sample(events_holding(text, rng), 3):
                lines.extend(v + b"\n" for v in rng.sample(json_spellings(event, text, rng), 2))
    for key in SECRET_KEYS:
        for event in events_keyed(key):
            lines.extend(v + b"\n" for v in json_spellings(event, key, rng))
    return lines

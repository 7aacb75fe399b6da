"""A deterministic Codex events file for the benchmarks, shaped like a real implementation run.

Current format (`codex exec --json`, codex >= 0.44; /work/shared/codex-formats.md section 2),
serialized compactly like serde (field order of the Rust structs, non-ASCII unescaped, control
characters as `\\u001b`). Each turn: `turn.started`, a todo list, 20-60 steps (reasoning, command
started/completed pairs with 200-1500 bytes of output and now and then a long test log, agent
messages, file changes, todo updates, MCP calls, web searches, warnings), the final message, the
todo list completed, `turn.completed`. A few outputs carry ANSI colour or a secret, so cleaning
and redaction do their real work. Same seed, same bytes.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

Event = dict[str, Any]

_VOCABULARY = """
the a to of and in is for that this with we it on be as file test function module config
publisher stream subject message line checkpoint offset error value return import class def
async await self None True False update change fix add remove refactor parse encode decode
json body header ack retry window buffer server client connection timeout drain signal
process worker queue event item command output status result path directory repository
branch commit diff patch review plan step todo agent run workflow namespace uid kind role
content attrs tool call arguments exit code failed completed started normalized redaction
secret token key password cache memory latency throughput benchmark profile hot path
ensure verify check assert expect should must cannot will would could already still now
first last next before after every each other same new old large small fast slow
"""
_WORDS = _VOCABULARY.split()
_MODULE_NAMES = """
cli bus settings jetstream core/lines core/message core/subjects core/codex core/redact core/text
publisher/publisher publisher/sender publisher/tailer publisher/checkpoint store/rows
consumer/ingest web/app web/sse
"""
_PATHS = [f"src/agent_comms/{m}.py" for m in _MODULE_NAMES.split()] + [
    f"tests/unit/test_{m}.py" for m in ("lines", "message", "redact", "codex", "settings", "sender")
]
_CODE = [
    "def normalize(self, kind: SourceKind, line: RawLine, ctx: FileContext) -> Normalized:",
    '    return result("status", "system", f"Turn completed. Tokens: {usage_summary(usage)}", attrs)',
    "async def publish(self, subject: str, payload: bytes) -> None:",
    "    headers = {MSG_ID_HEADER: enc.message_id, CONTENT_TYPE_HEADER: JSON_CONTENT_TYPE}",
    "    if self.in_flight >= self._max:",
    "for line in lines:",
    '    assert stored == expected, f"missing {len(expected - stored)} ids"',
    "import orjson",
    "from agent_comms.core.message import build_body, encode_copies",
    "        await self.sender.send(Copy(subject, enc.run, headers, ticket), self._expired)",
    "class TailedFile:",
    '    """One watched file, read from a resume point, chunk by chunk."""',
    '        raise ConfigError(f"{var}={path}: no such file; mount the secret that holds it")',
    "SELECT message_id, channel FROM workflow_comms.agent_messages WHERE workflow_uid = $1",
]
# Fake credentials in real shapes: about 0.3 % of outputs carry one, so redaction masks something.
_SECRETS = [
    "GITHUB_TOKEN=ghp_" + "Zq8wT1xY4rU7iO0pA3sD6fG9hJ2kL5zX8cV1",
    "DATABASE_URL=postgres://app:Sup3rS3cretPassw0rd@db.internal:5432/app",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLWhlcmU",
    "OPENAI_API_KEY=sk-proj-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6",
]
_COMMANDS = [
    "bash -lc 'rg -n \"{word}\" src tests'",
    "bash -lc 'sed -n 1,200p {path}'",
    "bash -lc '.venv/bin/python -m pytest -q tests/unit'",
    "bash -lc 'git diff --stat'",
    "bash -lc 'ls -la {path}'",
]


class EventsGenerator:
    """Lines of a Codex events file; `lines(n)` is the same for the same seed."""

    def __init__(self, seed: int = 20251002) -> None:
        self.rng = random.Random(seed)
        self.item = 0
        self.todo: list[dict[str, Any]] = []
        self.todo_id = "item_0"
        self.tokens = 0

    def lines(self, n: int) -> list[bytes]:
        thread = {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"}
        out = [orjson.dumps(thread) + b"\n"]
        while len(out) < n:
            out.extend(orjson.dumps(e) + b"\n" for e in self.turn())
        return out[:n]

    def turn(self) -> list[Event]:
        rng = self.rng
        events: list[Event] = [{"type": "turn.started"}]
        self.todo = [
            {"text": self.words(rng.randint(4, 9)).capitalize(), "completed": False}
            for _ in range(rng.randint(3, 7))
        ]
        self.todo_id = self._id()
        events.append(self._todo("item.started"))
        for _ in range(rng.randint(20, 60)):
            events.extend(self._step(rng.random()))
        events.append(self._completed("agent_message", text=self.prose(rng.randint(400, 1500))))
        for t in self.todo:
            t["completed"] = True
        events.append(self._todo("item.completed"))
        self.tokens += rng.randint(20000, 90000)
        usage = {
            "input_tokens": self.tokens,
            "cached_input_tokens": self.tokens * 9 // 10,
            "output_tokens": rng.randint(500, 9000),
        }
        events.append({"type": "turn.completed", "usage": usage})
        return events

    def _step(self, r: float) -> list[Event]:
        rng = self.rng
        if r < 0.16:
            title = self.words(3).title()
            return [self._completed("reasoning", text=f"**{title}**\n\n{self.prose(rng.randint(150, 700))}")]
        if r < 0.62:
            return self._command()
        if r < 0.74:
            return [self._completed("agent_message", text=self.prose(self._size(200, 1500)))]
        if r < 0.81:
            changes = [
                {"path": rng.choice(_PATHS), "kind": rng.choice(["update", "update", "add"])}
                for _ in range(rng.randint(1, 4))
            ]
            return [self._completed("file_change", changes=changes, status="completed")]
        if r < 0.88:
            for t in self.todo:
                if not t["completed"]:
                    t["completed"] = True
                    break
            return [self._todo("item.updated")]
        if r < 0.94:
            return self._mcp_call()
        if r < 0.97:
            return [self._completed("web_search", query=self.words(5))]
        message = f"model rerouted: gpt-5-codex -> gpt-5 ({self.words(6)})"
        return [self._completed("error", message=message)]

    def _completed(self, item_type: str, **fields: Any) -> Event:
        return {"type": "item.completed", "item": {"id": self._id(), "type": item_type, **fields}}

    def _todo(self, etype: str) -> Event:
        # A copy: a turn's events are serialized after the whole turn is built, and the list changes.
        items = [dict(t) for t in self.todo]
        return {"type": etype, "item": {"id": self.todo_id, "type": "todo_list", "items": items}}

    def _command(self) -> list[Event]:
        rng = self.rng
        item_id = self._id()
        cmd = rng.choice(_COMMANDS).format(word=rng.choice(_WORDS), path=rng.choice(_PATHS))
        started = {
            "id": item_id,
            "type": "command_execution",
            "command": cmd,
            "aggregated_output": "",
            "exit_code": None,
            "status": "in_progress",
        }
        code = 0 if rng.random() < 0.9 else 1
        completed = {
            **started,
            "aggregated_output": self.output(self._size(200, 1500)),
            "exit_code": code,
            "status": "completed" if code == 0 else "failed",
        }
        return [{"type": "item.started", "item": started}, {"type": "item.completed", "item": completed}]

    def _mcp_call(self) -> list[Event]:
        rng = self.rng
        call = {
            "id": self._id(),
            "type": "mcp_tool_call",
            "server": "github",
            "tool": "search_issues",
            "arguments": {"query": self.words(4), "per_page": 10},
            "result": None,
            "error": None,
            "status": "in_progress",
        }
        text = self.prose(rng.randint(200, 1200))
        result = {"content": [{"type": "text", "text": text}], "structured_content": None}
        done = {**call, "status": "completed", "result": result}
        return [{"type": "item.started", "item": call}, {"type": "item.completed", "item": done}]

    # -- text ------------------------------------------------------------------------------------

    def _id(self) -> str:
        self.item += 1
        return f"item_{self.item}"

    def _size(self, lo: int, hi: int) -> int:
        if self.rng.random() < 0.01:
            return self.rng.randint(4000, 12000)  # the occasional long test log or message
        return self.rng.randint(lo, hi)

    def words(self, n: int) -> str:
        return " ".join(self.rng.choices(_WORDS, k=n))

    def prose(self, size: int) -> str:
        """Markdown of about `size` bytes: sentences, list items, code blocks, some non-ASCII."""
        rng = self.rng
        parts: list[str] = []
        total = 0
        while total < size:
            r = rng.random()
            if r < 0.55:
                s = self.words(rng.randint(8, 20)).capitalize() + "."
            elif r < 0.8:
                s = "- " + self.words(rng.randint(4, 12)) + f" (`{rng.choice(_PATHS)}`)"
            elif r < 0.9:
                s = "\n```python\n" + "\n".join(rng.choices(_CODE, k=rng.randint(2, 5))) + "\n```\n"
            else:
                s = "Vérifié: " + self.words(rng.randint(4, 10)) + " — ok ✓"
            parts.append(s)
            total += len(s) + 1
        return ("\n" if rng.random() < 0.5 else " ").join(parts)

    def output(self, size: int) -> str:
        """Command output of about `size` bytes: grep hits, test runs, diffs or listings."""
        rng = self.rng
        style = rng.random()
        out: list[str] = []
        total = 0
        while total < size:
            path = rng.choice(_PATHS)
            if style < 0.35:
                s = f"{path}:{rng.randint(1, 900)}:{rng.choice(_CODE)}"
            elif style < 0.6:
                ok = rng.random() < 0.9
                mark = "PASSED" if ok else "FAILED"
                if ok and rng.random() < 0.1:
                    mark = "\x1b[32mPASSED\x1b[0m"
                name = "_".join(rng.choices(_WORDS, k=4))
                s = f"{path}::test_{name} {mark} [{rng.randint(1, 99):3d}%]"
            elif style < 0.8:
                s = f"{rng.choice('-+ ')}{rng.choice(_CODE)}"
            else:
                size, minute = rng.randint(100, 99999), rng.randint(10, 59)
                s = f"-rw-r--r-- 1 root root {size:6d} Oct  2 12:{minute} {path}"
            out.append(s)
            total += len(s) + 1
        if rng.random() < 0.003:
            out.insert(rng.randrange(len(out) + 1), rng.choice(_SECRETS))
        return "\n".join(out) + "\n"

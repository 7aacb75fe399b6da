"""A run as one Markdown document: a header, then each file's lines in order.

Agent messages are markdown already (the core renders tool calls and results as fenced blocks),
so they are written as they are; runs of plain log lines share one fenced block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agent_comms.web.render import strip_ansi


def _fence(text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return ticks


async def markdown_transcript(
    ref: str, runs: list[dict[str, Any]], batches: AsyncIterator[list[dict[str, Any]]]
) -> AsyncIterator[bytes]:
    head = [f"# Transcript of run {ref}", ""]
    for r in runs:
        head.append(
            f"- workflow `{r['workflow_name']}` (`{r['workflow_uid']}`), namespace `{r['namespace']}`, "
            f"status **{r['status']}**, agents {', '.join(r['agents'])}, {r['messages']} messages, "
            f"{r['failures']} failed commands, {r['first_at']} to {r['last_at']}"
        )
    yield ("\n".join(head) + "\n").encode()
    current: tuple[str, str] | None = None
    log_block: list[str] = []

    def flush_log() -> str:
        if not log_block:
            return ""
        body = "\n".join(log_block)
        fence = _fence(body)
        log_block.clear()
        return f"\n{fence}text\n{body}\n{fence}\n"

    async for batch in batches:
        out: list[str] = []
        for row in batch:
            where = (row["workflow_uid"], row["source"])
            if where != current:
                out.append(flush_log())
                out.append(f"\n## {row['source']} ({row['agent_id']}, workflow {row['workflow_uid']})\n")
                current = where
            content = strip_ansi(row["content"])
            if row["kind"] == "log":
                log_block.append(content)
                continue
            out.append(flush_log())
            ts = row["timestamp"].isoformat(timespec="seconds")
            out.append(f"\n### {row['line']} · {row['agent_id']} · {row['kind']} · {ts}\n\n{content}\n")
        yield "".join(out).encode()
    yield flush_log().encode()

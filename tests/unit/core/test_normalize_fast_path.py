"""Quiet lines (no secret can be there, nothing to clean) skip the redaction walk: same output.

`Normalizer(quiet_lines=False)` sends every line down the full path (cleaning, redaction of every
string, the walk of `attrs.raw`); each test normalizes the same lines both ways and compares.
The gate must be conservative: a line the full path would redact or clean must never be taken
for quiet. The lines hold every secret shape, in every field, spelled by different JSON writers,
split across argv items and `server`/`tool`, and behind escapes and control characters.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest

from agent_comms.core.codex import Normalizer, SourceKind, file_context
from agent_comms.core.lines import LineSplitter
from agent_comms.core.redact import Redactor
from tests.unit.core.codex_support import (
    EVENTS_FILE,
    SECRET_KEYS,
    SECRET_TEXTS,
    STEP_ID,
    events_holding,
    events_keyed,
    item,
    json_spellings,
    legacy,
    normalize_event,
    secret_lines,
)
from tests.unit.core.test_normalize_golden import GENERATED_LINES, GENERATED_SEED, normalized_fields

ROOT = Path(__file__).resolve().parents[3]

NOISE = (
    "\x1b[31m",
    "\x1b[0m",
    "\x1b[1;32m",
    "\x1b]0;title\x07",
    "\x1b(B",
    "\x00",
    "\x7f",
    "\r",
    "\r\n",
    "\t",
    "\n",
    "\b",
    "\\",
    '"',
    "'",
    " ",
    ".",
    "\\u001b[31m",
    "\u2028",
    "…",
    "é",
)
"""What is put into secrets: what cleaning removes, what JSON escapes, what joins strings."""


def assert_same_both_ways(
    lines: Iterable[bytes], *, max_line_bytes: int = 1 << 20, patterns: tuple[str, ...] = ()
) -> int:
    """Normalize the lines both ways, each way with its own context; returns how many were compared."""
    fast = Normalizer(Redactor(patterns), max_json_bytes=max_line_bytes)
    full = Normalizer(Redactor(patterns), max_json_bytes=max_line_bytes, quiet_lines=False)
    fast_ctx, full_ctx = file_context(EVENTS_FILE), file_context(EVENTS_FILE)
    splitter = LineSplitter(STEP_ID, max_line_bytes=max(max_line_bytes, 64 * 1024))
    raw = splitter.feed(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
    for line in raw:
        got = normalized_fields(fast.normalize(SourceKind.EVENTS, line, fast_ctx))
        want = normalized_fields(full.normalize(SourceKind.EVENTS, line, full_ctx))
        assert orjson.dumps(got) == orjson.dumps(want), f"line {line.number}: {line.data[:300]!r}"
    return len(raw)


def test_fixture_and_example_lines_come_out_the_same_both_ways() -> None:
    files = sorted((ROOT / "tests" / "fixtures" / "codex").glob("*.jsonl"))
    files.append(ROOT / "examples" / "codex-run" / ".codex-implementation-events.jsonl")
    for path in files:
        assert assert_same_both_ways(path.read_bytes().splitlines()) > 0


def test_generated_run_comes_out_the_same_both_ways() -> None:
    from bench.codex_events import EventsGenerator

    assert assert_same_both_ways(EventsGenerator(GENERATED_SEED).lines(GENERATED_LINES)) == GENERATED_LINES


def test_every_secret_shape_in_every_field_and_json_spelling_comes_out_the_same_both_ways() -> None:
    lines = secret_lines()
    assert assert_same_both_ways(lines) == len(lines)


def test_short_line_limits_and_extra_patterns_come_out_the_same_both_ways() -> None:
    lines = secret_lines(seed=11)[::3]
    assert_same_both_ways(lines, max_line_bytes=512)
    assert_same_both_ways(lines, patterns=(r"item_\d", r"(?P<secret>Found)"))


def _fuzzed_text(rng: random.Random) -> str:
    """A secret with noise put into it, or a secret-free text with noise, among ordinary words."""
    text = rng.choice(SECRET_TEXTS) if rng.random() < 0.7 else rng.choice(("ls -la", "all good", "x" * 600))
    for _ in range(rng.randrange(3)):
        i = rng.randrange(len(text) + 1)
        text = text[:i] + rng.choice(NOISE) + text[i:]
    padding = rng.choice(("", "ok ", "line\n" * rng.randrange(1, 5), "y" * rng.randrange(2000, 3000)))
    return padding + text + rng.choice(("", " done", "\n", "   "))


def fuzzed_lines(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    lines: list[bytes] = []
    while len(lines) < count:
        if rng.random() < 0.1:
            event = rng.choice(events_keyed(rng.choice(SECRET_KEYS)))
            text = "hunter22-value"
        else:
            text = _fuzzed_text(rng)
            event = rng.choice(events_holding(text, rng))
        lines.append(rng.choice(json_spellings(event, text, rng, escaped=len(text) < 300)))
    return lines


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_lines_come_out_the_same_both_ways(seed: int) -> None:
    assert assert_same_both_ways(fuzzed_lines(seed, 1500)) == 1500


def test_most_lines_of_a_realistic_run_are_let_through_by_the_gate() -> None:
    from bench.codex_events import EventsGenerator

    redactor = Redactor()
    lines = [line.rstrip(b"\n") for line in EventsGenerator(GENERATED_SEED).lines(2000)]
    quiet = sum(not redactor.may_match_json(line) for line in lines)
    assert quiet >= 0.9 * len(lines)


def test_extra_patterns_close_the_gate() -> None:
    assert Redactor([r"x"]).may_match_json(b'{"type":"turn.started"}')
    assert not Redactor().may_match_json(b'{"type":"turn.started"}')


def test_an_escape_that_removing_a_colour_completes_is_cleaned_as_the_full_path_cleans_it() -> None:
    # `\u001b\u001b[31m[0m`: removing `\u001b[31m` puts `\u001b[0m` together, which cleaning (one
    # pass) does not remove as a colour but as a control character.
    text = "ls -\x1b\x1b[31m[0mla done"
    assert (
        assert_same_both_ways([orjson.dumps(item("completed", id="i", type="agent_message", text=text))]) == 1
    )
    assert (
        normalize_event(item("completed", id="i", type="agent_message", text=text)).content
        == "ls -[0mla done"
    )


def test_a_secret_in_a_base64_output_chunk_is_found_though_the_line_holds_no_needle() -> None:
    token = "ghp_" + "Zq8wT1xY4rU7iO0pA3sD6fG9hJ2kL5zX8cV1"
    event = legacy(
        "exec_command_output_delta",
        call_id="c",
        stream="stdout",
        chunk=base64.b64encode(token.encode()).decode(),
    )
    assert not Redactor().may_match_json(orjson.dumps(event))
    assert "[REDACTED:github-token]" in normalize_event(event).content
    assert assert_same_both_ways([orjson.dumps(event)]) == 1


def test_colour_escapes_alone_do_not_cost_a_line_the_fast_path() -> None:
    line = orjson.dumps(
        item("completed", id="i", type="command_execution", aggregated_output="\x1b[32mok\x1b[0m")
    )
    assert Redactor().may_match_json(line)  # the escapes themselves
    assert not Redactor().may_match_json(line.replace(b"\\u001b[32m", b"").replace(b"\\u001b[0m", b""))


@pytest.mark.parametrize("text", ["plain query", SECRET_TEXTS[0], "\x1b[1mbold\x1b[0m query"])
def test_an_item_with_its_id_twice_comes_out_the_same_both_ways(text: str) -> None:
    query = orjson.dumps(text).decode()
    lines = [
        f'{{"type":"item.completed","item":{{"id":"ws_1","type":"web_search","id":"call_1","query":{query}}}}}',
        f'{{"type":"item.started","item":{{"id":"ws_2","type":"web_search","query":{query},"id":7}}}}',
        f'{{"type":"item.completed","item":{{"id":"a","type":"agent_message","text":{query},"x":{{"id":"b"}}}}}}',
    ]
    assert assert_same_both_ways(line.encode() for line in lines) == 3
    assert normalize_event(lines[0].encode()).attrs["call_id"] == "call_1"

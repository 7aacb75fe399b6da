"""Golden digests: what every fixture, example and generated line normalizes to is pinned.

A change to normalization that alters any output (a performance change must not) changes a digest
here. To see what changed, dump the outputs before and after and diff them:

    .venv/bin/python -m tests.unit.core.test_normalize_golden --dump /tmp/before

prints each corpus's digest and writes its outputs, one JSON object per line, to the directory.
An intended change of output re-records the digests this prints.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from agent_comms.core.codex import Normalizer, SourceKind, file_context, make_normalizer
from agent_comms.core.lines import LineSplitter, RawLine
from agent_comms.core.message import Normalized
from tests.unit.core.codex_support import EVENTS_FILE, LOG_FILE, STEP_ID, secret_lines

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "codex"
EXAMPLE = ROOT / "examples" / "codex-run"

GENERATED_LINES = 5000
GENERATED_SEED = 20251002
GENERATED_INPUT_SHA256 = "6e4ba8b17282017028585d82200eaf6b46aedf5d7aeef59f84f7a9e65916b036"
"""Of the generated file itself: if bench/codex_events.py changes what it writes, this says so
first (re-record the digests then; they no longer describe the same input)."""

CUSTOM_PATTERNS = (r"item_4\d\b", r"(?i)(?P<secret>codex)", r"(?P<secret>PASSED)", r"Turn")

# Recorded with the code before the fast path (commit ffa9e39): sorted-key JSON of each output,
# and the JSON as encoded (key order matters for the published bytes).
EXPECTED: dict[str, str] = {
    "fixtures": "e7990018759b2cc3958f063f72ad387284d2d518e195fb5e86eca3951727694b",
    "fixtures-short-lines": "d767f38eb8d1a9a85cbda16bc9004b8c82a647bd877e498924168c1221b62024",
    "fixtures-custom-patterns": "b37f8a60dab79918c27c51c0b711205e1bf6ca07bef244ca21cafd949a3cb37f",
    "generated": "f3a1b34b624ce7b1b529e8aadda9e6a595d9f62ac658c4c3d80664ca37e062e0",
    "generated-custom-patterns": "f2be5a37fadaedbc6d0fccacc58adbaef1c2811e7a5c439eef5cb0f0c54e38f5",
    "secrets": "a309723923c1096f8e0851409d7c659b17e7d407e60e4195b5cd09a06c9312aa",
    "secrets-short-lines": "ef6e6ab45bfdb5e47abb581ae6f9513cd46bcc27a305984c090025adf692134d",
}
EXPECTED_ORDER: dict[str, str] = {
    "fixtures": "d1bb8698abbe77788f27d4c0e32f99b6a49efad0a6ab16aa5175ee67f81c3700",
    "fixtures-short-lines": "dc631c09704e7dd96e8393a1db51389edc2cb30ba3736bab6e0e029374632532",
    "fixtures-custom-patterns": "25b40e4666f86718b7f6de2e22c44c55e7269c8d9c090d541c509bbc81dc295c",
    "generated": "a49eef2df711b930161372aeed7e3b859e4b78d0808c24e69cedd187dc5dea9b",
    "generated-custom-patterns": "551f7cebcb48a83d5d6759ba6c6728b5adf69e266d13309d4f5652bb45ce33ec",
    "secrets": "0956421e5b09b8156d246ba69a31961643572be56f92a31743384adb45604fea",
    "secrets-short-lines": "186d6abe429c44a5a6e4f0967c048c82098f14f3734d0c2c93fd244359b3e7bb",
}

File = tuple[SourceKind, str, bytes]
"""A file to normalize: its kind, its base name and its bytes."""


def normalized_fields(norm: Normalized) -> dict[str, object]:
    return {
        "kind": norm.kind,
        "role": norm.role,
        "content": norm.content,
        "tool": norm.tool,
        "attrs": norm.attrs,
        "timestamp": norm.timestamp,
    }


def normalize_files(
    normalizer: Normalizer, files: list[File], *, max_line_bytes: int
) -> Iterator[Normalized]:
    """Each line's `Normalized`, file after file, the last line of each flushed."""
    for kind, name, data in files:
        ctx = file_context(name)
        splitter = LineSplitter(STEP_ID, max_line_bytes=max_line_bytes)
        lines: list[RawLine] = splitter.feed(data)
        rest = splitter.finish()
        if rest is not None:
            lines.append(rest)
        for line in lines:
            yield normalizer.normalize(kind, line, ctx)


def fixture_files() -> list[File]:
    files: list[File] = [
        (SourceKind.EVENTS, EVENTS_FILE, p.read_bytes()) for p in sorted(FIXTURES.glob("*.jsonl"))
    ]
    files.append(
        (SourceKind.EVENTS, EVENTS_FILE, (EXAMPLE / ".codex-implementation-events.jsonl").read_bytes())
    )
    files.append((SourceKind.AGENT_LOG, LOG_FILE, (EXAMPLE / ".codex-implementation-agent.log").read_bytes()))
    return files


def generated_file() -> list[File]:
    from bench.codex_events import EventsGenerator

    data = b"".join(EventsGenerator(GENERATED_SEED).lines(GENERATED_LINES))
    if hashlib.sha256(data).hexdigest() != GENERATED_INPUT_SHA256:
        pytest.fail("bench/codex_events.py writes a different file now: re-record the golden digests")
    return [(SourceKind.EVENTS, EVENTS_FILE, data)]


def secrets_file() -> list[File]:
    return [(SourceKind.EVENTS, EVENTS_FILE, b"".join(secret_lines()))]


CORPORA: dict[str, Callable[[], Iterator[Normalized]]] = {
    "fixtures": lambda: normalize_files(
        make_normalizer(max_line_bytes=1 << 20), fixture_files(), max_line_bytes=1 << 20
    ),
    "fixtures-short-lines": lambda: normalize_files(
        make_normalizer(max_line_bytes=1024), fixture_files(), max_line_bytes=64 * 1024
    ),
    "fixtures-custom-patterns": lambda: normalize_files(
        make_normalizer(max_line_bytes=1 << 20, redact_patterns=CUSTOM_PATTERNS),
        fixture_files(),
        max_line_bytes=1 << 20,
    ),
    "generated": lambda: normalize_files(
        make_normalizer(max_line_bytes=4 << 20), generated_file(), max_line_bytes=4 << 20
    ),
    "generated-custom-patterns": lambda: normalize_files(
        make_normalizer(max_line_bytes=4 << 20, redact_patterns=CUSTOM_PATTERNS),
        generated_file(),
        max_line_bytes=4 << 20,
    ),
    "secrets": lambda: normalize_files(
        make_normalizer(max_line_bytes=1 << 20), secrets_file(), max_line_bytes=1 << 20
    ),
    "secrets-short-lines": lambda: normalize_files(
        make_normalizer(max_line_bytes=512), secrets_file(), max_line_bytes=64 * 1024
    ),
}


def digests(outputs: Iterator[Normalized]) -> tuple[str, str, list[bytes]]:
    """SHA-256 over each output's fields as sorted-key JSON, and as JSON in the order encoding
    keeps (so that published bodies stay byte for byte the same), and the sorted-key lines."""
    by_value, by_bytes = hashlib.sha256(), hashlib.sha256()
    lines = []
    for norm in outputs:
        fields = normalized_fields(norm)
        line = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        lines.append(line)
        by_value.update(line + b"\n")
        by_bytes.update(orjson.dumps(fields) + b"\n")
    return by_value.hexdigest(), by_bytes.hexdigest(), lines


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_normalized_output_matches_its_golden_digests(corpus: str) -> None:
    by_value, by_bytes, _ = digests(CORPORA[corpus]())
    assert by_value == EXPECTED[corpus], f"normalization of {corpus!r} changed; see the module docstring"
    assert by_bytes == EXPECTED_ORDER[corpus], f"key order of {corpus!r} changed (bodies encode differently)"


def main(argv: list[str]) -> None:
    dump = Path(argv[argv.index("--dump") + 1]) if "--dump" in argv else None
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
    results = {name: digests(outputs()) for name, outputs in CORPORA.items()}
    for name, (_, _, lines) in results.items():
        if dump is not None:
            (dump / f"{name}.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    print("EXPECTED: dict[str, str] = {")
    for name, (by_value, _, _) in results.items():
        print(f"    {name!r}: {by_value!r},")
    print("}\nEXPECTED_ORDER: dict[str, str] = {")
    for name, (_, by_bytes, _) in results.items():
        print(f"    {name!r}: {by_bytes!r},")
    print("}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""What a line of a Codex run file becomes: the one normalization the publisher and backfill share.

`Normalizer.normalize()` maps one `RawLine` of an events file (`codex exec --json`, any of the
legacy, transitional or current shapes) or of an agent log to exactly one `Normalized`, following
codex-formats.md section 5. The work per line, in this order:

1. decode (UTF-8 with replacement) and parse (orjson; skipped for oversized lines);
2. map the event to kind, role, content, tool and attrs;
3. clean every piece of content (ANSI, carriage returns, control characters);
4. redact secrets in content, tool and attrs (before any cut, so no secret leaks half at a cut);
5. cut: content to 64 KiB, long strings in attrs to about 2 KiB, arguments to about 2 KiB.

Most events lines hold no secret and nothing to clean, and steps 3 and 4 are most of the cost. A
*quiet* line is one proven so from its bytes and its parsed value before mapping (`_event`): then
no string is scanned for secrets, `attrs.raw` is not walked when the line is too short to need a
cut, and tool and attrs are checked with one encoding instead of a walk. The output is the same
either way (`Normalizer(quiet_lines=False)` turns this off; the tests compare the two).

It never raises: a line it cannot make sense of becomes a `status` line that says why.
"""

from __future__ import annotations

import enum
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any, Final

import orjson

from agent_comms.core import _codex_current, _codex_legacy
from agent_comms.core._codex_common import NO_RAW, RAW_STRING_MAX_BYTES, FileContext, LineWork, is_plain_value
from agent_comms.core._codex_parse import event_timestamp, item_ids, trim_head, trim_tail
from agent_comms.core._codex_render import cap_arguments, json_type, result, unrecognized
from agent_comms.core.lines import OVERSIZED_HEAD_BYTES, OVERSIZED_TAIL_BYTES, RawLine
from agent_comms.core.message import FileIdentity, Normalized, RunIdentity
from agent_comms.core.redact import Redactor
from agent_comms.core.text import CONTENT_MAX_BYTES, cap_text, clean_text, cut_marker, decode_line

__all__ = [
    "DEFAULT_GLOBS",
    "FileContext",
    "Normalizer",
    "SourceKind",
    "file_context",
    "file_identity",
    "identify_source",
]

_log = logging.getLogger(__name__)

DEFAULT_GLOBS: Final = (".codex-*-events.jsonl", ".codex-*-agent.log")


class SourceKind(enum.Enum):
    EVENTS = "events"
    """`.codex-<stage>-events.jsonl`: one `codex exec --json` event per line."""
    AGENT_LOG = "agent_log"
    """`.codex-<stage>-agent.log`: the agent's messages as plain text, line by line."""
    TEXT = "text"
    """Any other watched file: treated like an agent log."""


# `.codex-<stage>-events.jsonl`, also without the dot, or without the `codex-` prefix at all (the
# Argo templates write `.codex/implementation-events.jsonl`; a watched directory may be `.codex/`).
_SOURCE_NAME: Final = re.compile(r"^(?:\.?codex-)?(?P<stage>.+?)-(?P<what>events\.jsonl|agent\.log)$")


def identify_source(name: str) -> tuple[SourceKind, str | None]:
    """The kind of a watched file and the `<stage>` its base name carries (None if it carries none)."""
    m = _SOURCE_NAME.match(name)
    if m is None:
        return SourceKind.TEXT, None
    kind = SourceKind.EVENTS if m["what"] == "events.jsonl" else SourceKind.AGENT_LOG
    return kind, m["stage"]


def file_identity(run: RunIdentity, name: str) -> FileIdentity:
    """Agent and stage of a file's lines: the run's own where set, else the `<stage>` in the name."""
    _, stage = identify_source(name)
    return FileIdentity(source=name, agent_id=run.agent_id or stage or "agent", stage=run.stage or stage)


def file_context(name: str, saved: object = None) -> FileContext:
    """The context for a file: its artifact name as lab's backfill spells it, plus saved state.

    The artifact is `implementation-events` / `implementation-agent-log` for the two Codex files
    and the base name for any other file. `saved` is what `FileContext.to_json()` returned before
    a restart (from the checkpoint); its sticky thread id is restored, the artifact is always
    derived from `name`.
    """
    kind, stage = identify_source(name)
    ctx = FileContext.from_json(saved)
    if kind is SourceKind.EVENTS:
        ctx.artifact = f"{stage}-events"
    elif kind is SourceKind.AGENT_LOG:
        ctx.artifact = f"{stage}-agent-log"
    else:
        ctx.artifact = name
    return ctx


_CONFIG_KEYS: Final = frozenset(_codex_legacy.CONFIG_KEYS)
_BOM: Final = b"\xef\xbb\xbf"
_OVERSIZED_SNIFF_BYTES: Final = 4096
_SNIFF_TYPE: Final = re.compile(rb'"type":\s*"([A-Za-z0-9_./-]{1,64})"')
_SNIFF_ITEM_ID: Final = re.compile(rb'"id":\s*"((?:item|itm)_[0-9]{1,12})"')
_ESCAPED_CSI: Final = re.compile(rb"\\u001b\[[0-9;]*[A-Za-z]")
_ESCAPED_SGR: Final = re.compile(rb"\\u001b\[[0-9;]*m")
"""An ANSI colour or cursor escape as JSON writes it (ESC as `\\u001b`): the span cleaning's CSI
pattern removes from the decoded string, since parameters and final byte leave no choice."""


class Normalizer:
    """Maps lines of Codex run files to `Normalized` messages (codex-formats.md section 5).

    `max_json_bytes`: events lines longer than this are not parsed as JSON (they become a
    "too large to parse" line with head and tail kept); None parses every line that the splitter
    kept whole. `quiet_lines`: False sends every line through cleaning and redaction of each of
    its strings, which quiet lines skip with the same result (for tests and comparisons).
    """

    def __init__(
        self, redactor: Redactor, *, max_json_bytes: int | None = None, quiet_lines: bool = True
    ) -> None:
        self._redactor = redactor
        self._json_limit = sys.maxsize if max_json_bytes is None else max_json_bytes
        self._quiet_lines = quiet_lines

    def normalize(self, kind: SourceKind, line: RawLine, ctx: FileContext) -> Normalized:
        """Exactly one `Normalized` for the line; never raises, whatever its bytes.

        Updates `ctx` (the sticky thread id) as events announce it.
        """
        try:
            w = LineWork(self._redactor)
            events = kind is SourceKind.EVENTS
            if line.cut >= 0 or (events and line.size > self._json_limit):  # oversized, or too big to parse
                norm = self._oversized(kind, line, w)
            elif events:
                norm = self._event(line, ctx, w)
            else:
                norm = self._text(line, w)
            return self._finish(norm, line, ctx, w, events)
        except Exception as exc:  # The contract: one message per line, never a crash or a stall.
            _log.warning(
                "normalize_failed",
                extra={"line": line.number, "offset": line.offset, "error": type(exc).__name__},
                exc_info=_log.isEnabledFor(logging.DEBUG),
            )
            return _fallback(kind, line, ctx, exc)

    # -- per line ---------------------------------------------------------------------------------

    def _text(self, line: RawLine, w: LineWork) -> Normalized:
        """An agent-log (or other text) line: its cleaned text, leading white space kept."""
        text, invalid = decode_line(line.data)
        attrs: dict[str, Any] = {"format": "text"}
        if invalid:
            attrs["invalid_utf8"] = True
        content, flags = clean_text(text)
        w.had_ansi, w.had_controls = flags.had_ansi, flags.had_controls
        if not content:
            attrs["blank"] = True
            return result("log", "assistant", "", attrs)
        content, w.redacted = self._redactor.redact(content)
        return result("log", "assistant", content, attrs)

    def _event(self, line: RawLine, ctx: FileContext, w: LineWork) -> Normalized:
        data = line.data
        if not data or data.isspace():
            return result("status", "system", "", {"blank": True})
        if data.startswith(_BOM):
            data = data[3:]
        attrs: dict[str, Any] = {}
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj, unparsed = self._parse_damaged(data, line.size, attrs, w)
            if unparsed is not None:
                return unparsed
        else:
            # Quiet: no member named like a secret, nothing too deep or long (`is_plain_value`),
            # and no secret shape nor anything to clean in the strings (the redactor's line gate).
            if self._quiet_lines and (type(obj) is dict or type(obj) is list) and is_plain_value(obj):
                if not self._redactor.may_match_json(data):
                    w.plain = w.quiet = True
                else:
                    w.quiet = self._only_colours(data)
                # A string decoded from the line is shorter than the line: none is long enough to cut.
                w.raw_is_final = w.quiet and len(data) <= RAW_STRING_MAX_BYTES
        is_object = isinstance(obj, dict)
        # Only an item's ids are looked at: without one, the scan over the line is spared.
        if is_object and isinstance(obj.get("item"), dict) and data.count(b'"id"') > 1:
            w.item_ids = item_ids(data if "invalid_utf8" not in attrs else data.decode("utf-8", "replace"))
        norm = self._map(obj, ctx, w)
        if attrs:
            norm.attrs.update(attrs)
        w.raw = obj
        if is_object and "timestamp" in obj:
            norm.timestamp = event_timestamp(obj["timestamp"])
        return norm

    def _only_colours(self, data: bytes) -> bool:
        """Whether the line would be quiet but for ANSI colour escapes, which cleaning removes.

        The redactor vouches for the line's bytes with those escapes removed (what cleaning leaves
        of its strings), and for the bytes as they are (what the strings hold before cleaning:
        `attrs.raw`), where they are the only `\\u` escapes and spell ESC, no needle's character.
        """
        stripped, escapes = _ESCAPED_SGR.subn(b"", data)
        if escapes and not self._redactor.may_match_json(stripped):
            # Around a colour escape (`m`), the line's bytes hold no needle that the bytes without
            # it do not: no needle holds `\\`, `[` or `;`, or starts with `u001b`, a digit or `m`.
            return True
        # One pass over the line, as cleaning makes one pass over each string: an escape that
        # removing another puts together is not removed, and leaves a `\\u` escape behind.
        stripped, escapes = _ESCAPED_CSI.subn(b"", data)
        return (
            bool(escapes)
            and not self._redactor.may_match_json(stripped)
            and not self._redactor.may_match_bytes(data)
        )

    def _parse_damaged(
        self, data: bytes, line_size: int, attrs: dict[str, Any], w: LineWork
    ) -> tuple[Any, Normalized | None]:
        """Parse a line orjson refused: invalid UTF-8, ANSI around the JSON, or no JSON at all.

        Returns (parsed value, None), or (None, the line's `Normalized`) when it holds no JSON.
        """
        text, invalid = decode_line(data)
        if invalid:
            attrs["invalid_utf8"] = True
            try:
                return orjson.loads(text), None
            except orjson.JSONDecodeError:
                pass
        cleaned, flags = clean_text(text)
        w.had_ansi, w.had_controls = flags.had_ansi, flags.had_controls
        if cleaned != text and cleaned.lstrip()[:1] in ("{", "["):
            try:
                return orjson.loads(cleaned), None
            except orjson.JSONDecodeError:
                pass
        if not cleaned:
            return None, result("status", "system", "", {**attrs, "blank": True})
        if cleaned.lstrip()[:1] in ("{", "["):
            attrs["parse_error"] = True
            preview = w.summary(cleaned, 200)
            content = f"Malformed event line ({line_size} bytes): {preview}"
            return None, result("error", "system", content, attrs)
        attrs["non_json"] = True
        attrs["format"] = "text"
        return None, result("status", "system", w.text(cleaned), attrs)

    def _map(self, obj: Any, ctx: FileContext, w: LineWork) -> Normalized:
        """Classify a parsed line by shape (the stream carries no version) and map it."""
        try:
            if not isinstance(obj, dict):
                return unrecognized(f"JSON {json_type(obj)}, not an object", {"json_type": json_type(obj)})
            msg = obj.get("msg")
            if isinstance(msg, dict):
                return _codex_legacy.map_msg(obj, msg, ctx, w)
            etype = obj.get("type")
            if isinstance(etype, str):
                if etype == "session_summary":
                    return _codex_legacy.map_session_summary(obj, ctx, w)
                return _codex_current.map_event(obj, etype, ctx, w)
            if "msg" in obj:
                return unrecognized(f"msg is {json_type(msg)}, not an object", {})
            if "prompt" in obj:
                return _codex_legacy.map_prompt(obj, w)
            if not _CONFIG_KEYS.isdisjoint(obj):
                return _codex_legacy.map_config(obj, w)
            return unrecognized("an object without type or msg", {})
        except Exception as exc:  # An unexpected shape must not cost the line: say so instead.
            _log.debug("map_failed", exc_info=True)
            attrs = {"normalize_error": type(exc).__name__}
            if isinstance(obj, dict) and isinstance(obj.get("type"), str):
                attrs["event_type"] = obj["type"]
            w.reset()
            return unrecognized(f"unexpected shape ({type(exc).__name__})", attrs)

    def _oversized(self, kind: SourceKind, line: RawLine, w: LineWork) -> Normalized:
        """A line too long to parse: head and tail of its text, cleaned; the middle is omitted."""
        attrs: dict[str, Any] = {"oversized": True, "line_bytes": line.size}
        data = line.data
        looks_json = data.lstrip()[:1] in (b"{", b"[")
        header = ""
        if kind is SourceKind.EVENTS and looks_json:
            header = f"Event line too large to parse ({line.size} bytes)"
            sniffed = _SNIFF_TYPE.findall(data[:_OVERSIZED_SNIFF_BYTES])
            if sniffed:
                attrs["event_type"] = sniffed[0].decode("ascii")
                if len(sniffed) > 1 and sniffed[0].startswith(b"item."):
                    attrs["item_type"] = sniffed[1].decode("ascii")
            item_id = _SNIFF_ITEM_ID.search(data[:_OVERSIZED_SNIFF_BYTES])
            if item_id:
                attrs["item_id"] = item_id[1].decode("ascii")
            if "event_type" in attrs:
                header += f": {attrs['event_type']}" + (
                    f"/{attrs['item_type']}" if "item_type" in attrs else ""
                )
            header += "\n"
        if line.is_oversized:
            head, tail = data[: line.cut], data[line.cut :]
        elif len(data) > OVERSIZED_HEAD_BYTES + OVERSIZED_TAIL_BYTES:  # whole, but over max_json_bytes
            head, tail = data[:OVERSIZED_HEAD_BYTES], data[-OVERSIZED_TAIL_BYTES:]
        else:
            head, tail = data, b""
        if tail:
            tail = trim_tail(tail)
            # Leave room for header and marker, so the 64 KiB cap does not cut a second time.
            room = CONTENT_MAX_BYTES - len(header.encode()) - len(cut_marker(line.size)) - len(tail) - 64
            head = trim_head(head[:room])
            omitted = line.size - len(head) - len(tail)
            body = self._clean_piece(head, attrs, w) + cut_marker(omitted) + self._clean_piece(tail, attrs, w)
            attrs["truncated"] = True
            attrs["content_bytes"] = line.size
        else:
            body = self._clean_piece(head, attrs, w)
        content, w.redacted = self._redactor.redact(header + body)
        if kind is not SourceKind.EVENTS:
            attrs["format"] = "text"
            return result("log", "assistant", content, attrs)
        return result("error" if looks_json else "status", "system", content, attrs)

    @staticmethod
    def _clean_piece(data: bytes, attrs: dict[str, Any], w: LineWork) -> str:
        text, invalid = decode_line(data)
        if invalid:
            attrs["invalid_utf8"] = True
        cleaned, flags = clean_text(text)
        w.had_ansi = w.had_ansi or flags.had_ansi
        w.had_controls = w.had_controls or flags.had_controls
        return cleaned

    def _finish(
        self, norm: Normalized, line: RawLine, ctx: FileContext, w: LineWork, events: bool
    ) -> Normalized:
        """Redact tool and attrs, cut what is long, add the line's common attrs, cap content.

        `raw` is scrubbed first: attrs and tool mostly hold objects of the parsed event, which are
        then found in the per-line memo instead of being walked again.
        """
        event_attrs = norm.attrs
        raw = w.raw
        redacted = 0
        if raw is not NO_RAW and not w.raw_is_final:
            raw, redacted = w.scrub(raw)
        final = w.quiet and _fits_uncut(norm.tool, event_attrs)  # nothing to mask, nothing to cut
        if norm.tool is not None and not final:
            if w.quiet:
                tool = w.cut_members(norm.tool)
            else:
                tool = {}
                redacted += w.scrub_members(norm.tool, tool)
            if "arguments" in tool:
                tool["arguments"] = cap_arguments(tool["arguments"])
            norm.tool = tool
        if ctx.artifact is not None:
            attrs: dict[str, Any] = {"artifact": ctx.artifact, "byte_offset": line.offset}
        else:
            attrs = {"byte_offset": line.offset}
        if final or (w.quiet and _fits_uncut(None, event_attrs)):
            attrs.update(event_attrs)
        else:
            if w.quiet:
                attrs.update(w.cut_members(event_attrs))
            else:
                redacted += w.scrub_members(event_attrs, attrs)
            if "arguments" in attrs:
                attrs["arguments"] = cap_arguments(attrs["arguments"])
        if events and ctx.thread_id is not None and "thread_id" not in attrs:
            attrs["thread_id"] = ctx.thread_id
        if line.partial:
            attrs["partial_line"] = True
        if w.had_ansi:
            attrs["had_ansi"] = True
        if w.had_controls:
            attrs["had_controls"] = True
        redacted += w.redacted
        if redacted:
            attrs["redacted"] = redacted
        if len(norm.content) * 4 > CONTENT_MAX_BYTES:  # else no cut is possible: skip the call
            content, omitted = cap_text(norm.content)
            if omitted:
                attrs["truncated"] = True
                attrs["content_bytes"] = len(norm.content.encode("utf-8"))
                norm.content = content
        if raw is not NO_RAW:
            attrs["raw"] = raw
        norm.attrs = attrs
        return norm


_UNCUT_JSON_BYTES: Final = 514
"""JSON this short holds no list that `scrub` shortens (257 items take 515 bytes), no string it cuts
(2,049 bytes) and no `arguments` that `cap_arguments` cuts (2,049 bytes)."""


def _fits_uncut(tool: dict[str, Any] | None, attrs: dict[str, Any]) -> bool:
    """Whether a quiet line's tool and attrs are final as they are: one C-level encoding, no walk.

    Nesting is not measured: a quiet line's containers are shallow enough (`is_plain_value`).
    """
    try:
        return len(orjson.dumps((tool, attrs))) <= _UNCUT_JSON_BYTES
    except (TypeError, orjson.JSONEncodeError):
        return False


def _fallback(kind: SourceKind, line: RawLine, ctx: FileContext, exc: Exception) -> Normalized:
    """The last resort when normalization itself failed: a line that says so, with no content."""
    attrs: dict[str, Any] = {"normalize_error": type(exc).__name__, "byte_offset": line.offset}
    if ctx.artifact is not None:
        attrs["artifact"] = ctx.artifact
    if kind is SourceKind.EVENTS:
        return Normalized("status", "system", f"Unrecognized event line ({line.size} bytes)", None, attrs)
    return Normalized("log", "assistant", f"[line of {line.size} bytes could not be normalized]", None, attrs)


def make_normalizer(*, max_line_bytes: int, redact_patterns: Sequence[str] = ()) -> Normalizer:
    """The normalizer for a run's options. The publisher and the backfill both build theirs here
    (with the options recorded in identity.json), so a line becomes the same message either way.

    Raises ValueError naming a redact pattern that is not a valid regex.
    """
    return Normalizer(Redactor(tuple(redact_patterns)), max_json_bytes=max_line_bytes)

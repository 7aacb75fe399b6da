"""What the Codex mappings share: per-file state and the per-line work (cleaning, redaction, cuts).

Private to `agent_comms.core.codex`, which re-exports `FileContext`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from agent_comms.core._codex_render import MAX_NESTING, as_text, json_type
from agent_comms.core.redact import Redactor, is_unmasked_secret_value, mask
from agent_comms.core.text import NOTHING_REMOVED, cap_text, clean_multiline

RAW_STRING_MAX_BYTES: Final = 2048
"""Strings in `attrs.raw` (and other attrs) are cut to this, so attrs never repeat a 3 MB output."""

SUMMARY_MAX_CHARS: Final = 500
"""Short summaries (deltas, malformed-line previews) keep at most this many characters of text."""

_NEVER_CUT_CHARS: Final = RAW_STRING_MAX_BYTES // 4
"""A string this short cannot exceed `RAW_STRING_MAX_BYTES` of UTF-8, whatever its characters."""

_CHOSEN_VALUES: Final = frozenset({"format", "phase", "json_type", "transient", "fatal", "delta", "blank"})
"""Attrs whose values normalization picks from its own constants: nothing to scan."""

MAX_LIST_ITEMS: Final = 256
"""Longer lists in attrs (e.g. a legacy output chunk as byte integers) keep their first half of this."""


@dataclass(slots=True)
class FileContext:
    """Per-file state that outlives a line: the artifact name and the sticky thread id.

    A restarted publisher restores it from its checkpoint (`to_json` / `from_json`), so lines
    after a restart still carry the `thread_id` announced at the top of the file.
    """

    artifact: str | None = None
    thread_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "thread_id": self.thread_id}

    @classmethod
    def from_json(cls, data: object) -> FileContext:
        """The inverse of `to_json`; unknown keys and values of the wrong type are ignored."""
        if not isinstance(data, dict):
            return cls()
        artifact = data.get("artifact")
        thread_id = data.get("thread_id")
        return cls(
            artifact if isinstance(artifact, str) else None,
            thread_id if isinstance(thread_id, str) else None,
        )


class LineWork:
    """The state of normalizing one line: cleaning flags, redaction count and the redaction memo.

    Every string that goes into `content` passes through `text()`, which cleans it and then
    redacts it, once. The memo maps the id of each source string (the very objects held by the
    parsed event, hence by `attrs.raw`) to its redacted form, so `scrub()` does not scan it again.
    """

    __slots__ = (
        "counted",
        "had_ansi",
        "had_controls",
        "has_extra_patterns",
        "item_ids",
        "memo",
        "redacted",
        "redactor",
        "scrubbed",
    )

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.has_extra_patterns = redactor.has_extra_patterns
        self.memo: dict[int, tuple[str, int]] = {}
        self.scrubbed: dict[int, tuple[Any, Any]] = {}
        """Container id -> (scrubbed container, the original, kept alive so its id stays unique)."""
        self.counted: set[int] = set()
        """Ids of strings whose secrets `redacted` already counts (content and raw share strings)."""
        self.redacted = 0
        self.had_ansi = False
        self.had_controls = False
        self.item_ids: tuple[str, str] | None = None
        """(first, second) `id` of an item that carried the key twice (web_search), else None."""

    def reset(self) -> None:
        """Forget the flags and count of a mapping attempt that failed (the memo stays valid)."""
        self.redacted = 0
        self.had_ansi = False
        self.had_controls = False

    def text(self, value: Any) -> str:
        """A value as it goes into content: text, cleaned (newlines kept), then redacted."""
        source = as_text(value)
        cleaned, flags = clean_multiline(source)
        if flags is not NOTHING_REMOVED:
            self.had_ansi = self.had_ansi or flags.had_ansi
            self.had_controls = self.had_controls or flags.had_controls
        redacted, n = self.redactor.redact_cached(cleaned, self.memo)
        self._count(cleaned, n)
        self.counted.add(id(source))
        if flags is NOTHING_REMOVED and source is not cleaned and id(source) not in self.memo:
            # Cleaning only stripped trailing white space, which no secret shape depends on: the
            # source's redaction is the cleaned one's plus that white space.
            self.memo[id(source)] = (source if n == 0 else redacted + source[len(cleaned) :], n)
        return redacted

    def _count(self, text: str, n: int) -> int:
        """Add a string's masks to `redacted` unless that very string was counted before."""
        if n and id(text) not in self.counted:
            self.counted.add(id(text))
            self.redacted += n
            return n
        return 0

    def summary(self, value: Any, max_chars: int = SUMMARY_MAX_CHARS) -> str:
        """`text()` cut to `max_chars` characters (after redaction, so no secret is cut in half)."""
        text = self.text(value)
        return text if len(text) <= max_chars else text[:max_chars] + "…"

    def scrub(self, value: Any, depth: int = 0) -> tuple[Any, int]:
        """A JSON value ready for attrs or tool: redacted, long strings cut, depth and lists bounded.

        Returns the value and the number of secrets masked in it that `text()` had not counted
        already. Unchanged containers come back as the same objects; a container met twice (attrs
        and `raw` share the event's objects) is walked once. This walks every parsed event, so it
        avoids work where it can: scalars and short strings are skipped inline.
        """
        if isinstance(value, str):
            return self._scrub_str(value)
        if not isinstance(value, (dict, list)):
            return value, 0
        done = self.scrubbed.get(id(value))
        if done is not None:
            return done[0], 0
        if depth >= MAX_NESTING:
            out: tuple[Any, int] = (f"…[{json_type(value)} nested deeper than {MAX_NESTING} levels]", 0)
        elif isinstance(value, dict):
            out = self._scrub_dict(value, depth)
        else:
            out = self._scrub_list(value, depth)
        self.scrubbed[id(value)] = (out[0], value)  # keep `value` alive: its id must not be reused
        return out

    def scrub_members(self, values: dict[str, Any], into: dict[str, Any]) -> int:
        """Scrub the values of a dict whose member names are ours (attrs, tool) into `into`.

        Unlike `scrub`, member names are not checked for secrets: normalization chose them. Most
        values are objects of the parsed event, already scrubbed with `raw`: identity lookups.
        """
        total = 0
        for k, v in values.items():
            tv = type(v)
            if tv is str:
                if k not in _CHOSEN_VALUES and not self._is_known_clean(v):
                    v, n = self._scrub_str(v)
                    total += n
            elif not (tv is int or tv is float or tv is bool or v is None):
                v, n = self.scrub(v)
                total += n
            into[k] = v
        return total

    def _is_known_clean(self, value: str) -> bool:
        """Short, or an event string already found clean and too short to be cut: nothing to do."""
        if len(value) < 8:
            return not self.has_extra_patterns
        hit = self.memo.get(id(value))
        return hit is not None and hit[0] is value and len(value) <= _NEVER_CUT_CHARS

    def _scrub_str(self, value: str) -> tuple[str, int]:
        if len(value) < 8 and not self.has_extra_patterns:
            return value, 0
        hit = self.memo.get(id(value))
        if hit is None:
            hit = self.memo[id(value)] = self.redactor.redact(value)
        text, n = hit
        if n:
            n = self._count(value, n)
        if len(text) * 4 > RAW_STRING_MAX_BYTES:
            text = cap_text(text, RAW_STRING_MAX_BYTES)[0]
        return text, n

    def _scrub_dict(self, value: dict[str, Any], depth: int) -> tuple[dict[str, Any], int]:
        total = 0
        changed: dict[str, Any] | None = None
        key_kind = self.redactor.secret_key_kind if self.redactor.may_have_secret_keys(value) else None
        for k, v in value.items():
            tv = type(v)
            if tv is int or tv is float or tv is bool or v is None:
                continue
            if tv is str:
                kind = key_kind(k) if key_kind is not None else None
                if kind is not None and is_unmasked_secret_value(v):
                    new: Any = mask(kind)
                    n = 1
                elif self._is_known_clean(v):
                    continue
                else:
                    new, n = self._scrub_str(v)
            else:
                new, n = self.scrub(v, depth + 1)
            total += n
            if new is not v:
                if changed is None:
                    changed = dict(value)
                changed[k] = new
        return (value if changed is None else changed), total

    def _scrub_list(self, value: list[Any], depth: int) -> tuple[list[Any], int]:
        total = 0
        items: list[Any] | None = None
        if len(value) > MAX_LIST_ITEMS:
            keep = MAX_LIST_ITEMS // 2
            value = items = [*value[:keep], f"…[{len(value) - keep} more items]"]
        for i, v in enumerate(value):
            tv = type(v)
            if tv is int or tv is float or tv is bool or v is None:
                continue
            new, n = self.scrub(v, depth + 1)
            total += n
            if new is not v:
                if items is None:
                    items = list(value)
                items[i] = new
        return (value if items is None else items), total

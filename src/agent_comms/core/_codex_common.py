"""What the Codex mappings share: per-file state and the per-line work (cleaning, redaction, cuts).

Private to `agent_comms.core.codex`, which re-exports `FileContext`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from agent_comms.core._codex_render import MAX_NESTING, as_text, json_type
from agent_comms.core.redact import SECRET_MEMBER_NAMES, Redactor, is_unmasked_secret_value, mask
from agent_comms.core.text import NOTHING_REMOVED, cap_text, clean_colours, clean_multiline

RAW_STRING_MAX_BYTES: Final = 2048
"""Strings in `attrs.raw` (and other attrs) are cut to this, so attrs never repeat a 3 MB output."""

SUMMARY_MAX_CHARS: Final = 500
"""Short summaries (deltas, malformed-line previews) keep at most this many characters of text."""

NO_RAW: Final = object()
"""`LineWork.raw` of a line that is not a JSON value (agent log, malformed or oversized event)."""

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
    On a quiet line (see `quiet`) neither redacts, and `scrub()` only cuts.
    """

    __slots__ = (
        "alive",
        "counted",
        "had_ansi",
        "had_controls",
        "item_ids",
        "memo",
        "plain",
        "quiet",
        "raw",
        "raw_is_final",
        "redacted",
        "redactor",
        "scrubbed",
    )

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.memo: dict[int, tuple[str, int]] = {}
        self.scrubbed: dict[int, tuple[Any, Any]] = {}
        """Container id -> (scrubbed container, the original, kept alive so its id stays unique)."""
        self.counted: set[int] = set()
        """Ids of strings whose secrets `redacted` already counts (content and raw share strings)."""
        self.alive: list[str] = []
        """Strings made for `text()` (JSON of a value, `server.tool`, a cleaned copy) whose ids are
        in `memo` or `counted`: kept until the line is done, or a later string could get the id of
        one freed and, with it, that one's redaction."""
        self.redacted = 0
        self.had_ansi = False
        self.had_controls = False
        self.item_ids: tuple[str, str] | None = None
        """(first, second) `id` of an item that carried the key twice (web_search), else None."""
        self.quiet = False
        """Nothing in the line needs redaction (`Normalizer` proved it from its bytes): `text()`
        does not redact, `scrub()` only cuts and bounds. Its strings hold no control character
        but newline, tab and the ESC of colour escapes (`clean_colours` is their cleaning)."""
        self.plain = False
        """Quiet, and not even colour escapes: `text()` only strips trailing white space."""
        self.raw_is_final = False
        """`scrub()` would return the parsed event unchanged: quiet, and too short to cut."""
        self.raw: Any = NO_RAW
        """The parsed event, for `attrs.raw` (`NO_RAW` for a line that is not JSON)."""

    def leave_quiet(self) -> None:
        """Clean and redact from here on: for text that is not in the line's bytes (a decoded chunk).

        What quiet `text()` returned so far is what the full path returns for the same strings.
        """
        self.quiet = self.plain = self.raw_is_final = False

    def reset(self) -> None:
        """Forget the flags and count of a mapping attempt that failed (the memo stays valid)."""
        self.redacted = 0
        self.had_ansi = False
        self.had_controls = False

    def text(self, value: Any) -> str:
        """A value as it goes into content: text, cleaned (newlines kept), then redacted."""
        source = value if type(value) is str else as_text(value)
        if self.plain:
            return source.rstrip()
        cleaned, flags = clean_colours(source) if self.quiet else clean_multiline(source)
        if flags is not NOTHING_REMOVED:
            self.had_ansi = self.had_ansi or flags.had_ansi
            self.had_controls = self.had_controls or flags.had_controls
        if self.quiet:
            return cleaned
        self.alive += (source, cleaned)
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

    def cut_members(self, values: dict[str, Any]) -> dict[str, Any]:
        """`scrub_members` for a quiet line: the values, or a copy with what is too long cut."""
        out: dict[str, Any] | None = None
        for k, v in values.items():
            tv = type(v)
            if tv is str:
                if len(v) <= _NEVER_CUT_CHARS:
                    continue
                new: Any = cap_text(v, RAW_STRING_MAX_BYTES)[0]
            elif tv is int or tv is float or tv is bool or v is None:
                continue
            elif (tv is dict or tv is list) and not _may_cut(v, 0):
                continue  # unchanged, as `scrub` would return it: found here without the memo
            else:
                new = self.scrub(v)[0]
            if new is not v:
                if out is None:
                    out = dict(values)
                out[k] = new
        return values if out is None else out

    def _is_known_clean(self, value: str) -> bool:
        """Short, or an event string already found clean and too short to be cut: nothing to do."""
        if len(value) < 8:
            return not self.redactor.has_extra_patterns
        hit = self.memo.get(id(value))
        return hit is not None and hit[0] is value and len(value) <= _NEVER_CUT_CHARS

    def _scrub_str(self, value: str) -> tuple[str, int]:
        if self.quiet:
            return (cap_text(value, RAW_STRING_MAX_BYTES)[0] if len(value) > _NEVER_CUT_CHARS else value), 0
        if len(value) < 8 and not self.redactor.has_extra_patterns:
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
        quiet = self.quiet
        key_kind = None
        if not quiet and self.redactor.may_have_secret_keys(value):
            key_kind = self.redactor.secret_key_kind
        new: Any
        for k, v in value.items():
            tv = type(v)
            if tv is int or tv is float or tv is bool or v is None:
                continue
            if tv is str and quiet:
                if len(v) <= _NEVER_CUT_CHARS:
                    continue
                new, n = self._scrub_str(v)
            elif tv is str:
                kind = key_kind(k) if key_kind is not None else None
                if kind is not None and is_unmasked_secret_value(v):
                    new = mask(kind)
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


_DEEPEST: Final = MAX_NESTING - 3
"""The depth below which `is_plain_value` accepts no more containers: those of a quiet line sit
in attrs and tool under at most two levels that mapping adds, still above `MAX_NESTING`, so that
nothing there needs a depth check (`Normalizer._finish`)."""


def is_plain_value(value: dict[str, Any] | list[Any], depth: int = 0) -> bool:
    """Whether `scrub` could change nothing in this parsed JSON value but strings too long to keep.

    False if an object has a member named like a secret (its value is masked whatever it is), a
    list is longer than `MAX_LIST_ITEMS`, or a container sits deeper than `_DEEPEST` (`scrub`
    replaces those from `MAX_NESTING` levels down).
    """
    if type(value) is dict:
        if not SECRET_MEMBER_NAMES.isdisjoint(value):
            return False
        items: Any = value.values()
    elif len(value) > MAX_LIST_ITEMS:
        return False
    else:
        items = value
    for v in items:
        tv = type(v)
        if (tv is dict or tv is list) and (depth >= _DEEPEST or not is_plain_value(v, depth + 1)):
            return False
    return True


def _may_cut(value: Any, depth: int) -> bool:
    """Whether a quiet `scrub` of this container, met at `depth`, may change anything in it.

    Nested containers are not remembered (`LineWork.scrubbed`) as `scrub` would. That gives the
    same result: a container of the event found unchanged here is unchanged in `raw` too (scrubbed
    first, or final), since it sits no deeper in attrs or tool than there.
    """
    tv = type(value)
    if tv is dict:
        items: Any = value.values()
    elif tv is list and len(value) <= MAX_LIST_ITEMS:
        items = value
    else:
        return True
    for v in items:
        tv = type(v)
        if tv is str:
            if len(v) > _NEVER_CUT_CHARS:
                return True
        elif tv is dict or tv is list:
            if depth + 1 >= MAX_NESTING or _may_cut(v, depth + 1):
                return True
        elif not (tv is int or tv is float or tv is bool or v is None):
            return True
    return False

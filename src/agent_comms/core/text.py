"""Text helpers shared by normalization and payload fitting: decoding, cleaning and capping.

Cleaning follows codex-formats.md 5.1 (steps 3-4): decode UTF-8 with replacement, remove ANSI
escapes, apply carriage-return overwrite, remove C0 controls (except tab) and DEL, strip trailing
white space. Plain text (the common case) costs one C-level pass over its bytes and an `rstrip`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

CONTENT_MAX_BYTES: Final = 64 * 1024
"""The contract's cap on `content` (DESIGN.md): 64 KiB of UTF-8."""

TAIL_SHARE: Final = 0.125
"""Share of a cut text's budget kept from its end (the end of a command's output matters)."""


def cut_marker(omitted: int) -> str:
    return f"\n…[truncated {omitted} bytes]…\n"


def cap_text(text: str, max_bytes: int = CONTENT_MAX_BYTES) -> tuple[str, int]:
    """Cut `text` to at most `max_bytes` of UTF-8, keeping its head and a short tail.

    Returns the text and the number of bytes omitted (0 when it already fit). The marker that
    joins head and tail counts toward `max_bytes`; cuts never split a UTF-8 sequence.
    """
    if len(text) * 4 <= max_bytes:  # cheap: no string of this length can exceed the cap
        return text, 0
    if text.isascii():  # a flag CPython keeps: one byte per character, so cut without encoding
        return _cap_ascii(text, max_bytes)
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text, 0
    marker_room = len(cut_marker(len(raw)).encode("utf-8"))
    budget = max(max_bytes - marker_room, 0)
    tail_n = int(budget * TAIL_SHARE)
    head_n = budget - tail_n
    head = raw[:head_n].decode("utf-8", "ignore")
    tail = raw[len(raw) - tail_n :].decode("utf-8", "ignore") if tail_n else ""
    omitted = len(raw) - len(head.encode("utf-8")) - len(tail.encode("utf-8"))
    return head + cut_marker(omitted) + tail, omitted


def _cap_ascii(text: str, max_bytes: int) -> tuple[str, int]:
    """`cap_text` for ASCII text, where characters and bytes are the same: slices, no codec."""
    if len(text) <= max_bytes:
        return text, 0
    budget = max(max_bytes - len(cut_marker(len(text)).encode("utf-8")), 0)
    tail_n = int(budget * TAIL_SHARE)
    head_n = budget - tail_n
    omitted = len(text) - head_n - tail_n
    return text[:head_n] + cut_marker(omitted) + (text[len(text) - tail_n :] if tail_n else ""), omitted


# -- decoding ------------------------------------------------------------------------------------


def decode_line(data: bytes) -> tuple[str, bool]:
    """Decode a line as UTF-8; invalid bytes become U+FFFD (one per maximal invalid subsequence).

    Returns the text and whether any byte was invalid. Never raises: a line is never dropped for
    its bytes.
    """
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace"), True


# -- cleaning ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CleanFlags:
    """What cleaning removed: ANSI escapes, or other control characters (NUL, BEL, DEL, ...)."""

    had_ansi: bool = False
    had_controls: bool = False


NOTHING_REMOVED: Final = CleanFlags()

# ANSI escapes: CSI `ESC [ params final`, OSC `ESC ] ... (BEL | ESC \\)` (an unterminated OSC runs
# to the end of its line, as a terminal would swallow it), DCS/SOS/PM/APC strings ended by ST,
# nF sequences such as `ESC ( B` (tput sgr0 emits it), and two-byte `ESC X`.
_ANSI: Final = re.compile(
    r"\x1b(?:"
    r"\[[0-?]*[ -/]*[@-~]"
    r"|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    r"|[PX^_][^\x1b\n]*\x1b\\"
    r"|[ -/]+[0-~]"
    r"|[0-Z\\^-~]"
    r")"
)

# The characters cleaning removes: C0 controls (ESC and CR included) and DEL. The line variant
# also removes `\n` (it cannot occur in a physical line anyway); the multi-line variant, for
# strings decoded from JSON, keeps `\n`. Tab always stays.
_CONTROLS_LINE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROLS_MULTILINE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# The fast "is there anything to do?" test deletes those bytes from the UTF-8 encoding and compares
# lengths: about 0.8 µs per KiB, where a regex `search` over the text costs about 3 µs per KiB
# (CPython's `re` checks a character class at a few ns per character). UTF-8 never encodes other
# characters with bytes below 0x80, so the test is exact.
_CONTROL_BYTES_LINE: Final = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])
_CONTROL_BYTES_MULTILINE: Final = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])


def has_controls(text: str, *, keep_newlines: bool = False) -> bool:
    """Whether cleaning would remove anything but trailing white space from `text`."""
    raw = text.encode("utf-8", "surrogatepass")
    deleted = raw.translate(None, _CONTROL_BYTES_MULTILINE if keep_newlines else _CONTROL_BYTES_LINE)
    return len(deleted) != len(raw)


def _overwrite(segment: str) -> str:
    """Carriage-return overwrite: the last segment that is not blank (a progress bar's last state)."""
    parts = segment.split("\r")
    for part in reversed(parts):
        if part.strip():
            return part
    return ""


def _clean(text: str, controls: re.Pattern[str], multiline: bool) -> tuple[str, CleanFlags]:
    had_ansi = False
    if "\x1b" in text:
        text, n = _ANSI.subn("", text)
        had_ansi = n > 0
    if "\r" in text:
        if multiline and "\n" in text:
            text = "\n".join(_overwrite(line) if "\r" in line else line for line in text.split("\n"))
        else:
            text = _overwrite(text)
    removed = 0
    if has_controls(text, keep_newlines=multiline):  # ANSI escapes are often all there was
        text, removed = controls.subn("", text)
    return text.rstrip(), CleanFlags(had_ansi, removed > 0)


def clean_text(text: str) -> tuple[str, CleanFlags]:
    """Clean one physical line for people (and for Postgres, which rejects NUL).

    Removes ANSI escapes, applies carriage-return overwrite (if a `\\r` remains, the last
    non-blank segment wins), removes C0 controls except tab, and DEL, then strips trailing white
    space. Leading white space is kept (markdown indentation).
    """
    if not has_controls(text):
        return text.rstrip(), NOTHING_REMOVED
    return _clean(text, _CONTROLS_LINE, multiline=False)


def clean_colours(text: str) -> tuple[str, CleanFlags]:
    """`clean_multiline` for text whose only control characters are newline, tab, and ESC where it
    starts a CSI escape (`ESC [ digits letter`): removing those escapes is all there is to do."""
    if "\x1b" not in text:
        return text.rstrip(), NOTHING_REMOVED
    text, n = _ANSI.subn("", text)
    return text.rstrip(), CleanFlags(n > 0, False)


def clean_multiline(text: str) -> tuple[str, CleanFlags]:
    """`clean_text` for a string decoded from JSON that may hold several lines.

    Newlines survive; carriage-return overwrite applies line by line (so `\\r\\n` becomes `\\n`);
    trailing white space is stripped from the end of the whole text only, which keeps markdown
    hard line breaks inside it.
    """
    if not has_controls(text, keep_newlines=True):
        return text.rstrip(), NOTHING_REMOVED
    return _clean(text, _CONTROLS_MULTILINE, multiline=True)

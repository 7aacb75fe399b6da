"""Parsing details of events lines: duplicate `"id"` keys, event timestamps, UTF-8 cut repair.

Private to `agent_comms.core.codex`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Final

_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


class _DupIds(dict[str, Any]):
    """An object that carried `"id"` twice: the first value stays, the second is kept aside."""

    second_id: Any = None


def _keep_first_id(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    second: Any = None
    for key, value in pairs:
        if key == "id" and "id" in obj:
            if second is None:
                second = value
            continue
        obj[key] = value
    if second is None:
        return obj
    dup = _DupIds(obj)
    dup.second_id = second
    return dup


def item_ids(data: bytes | str) -> tuple[str, str] | None:
    """(first, second) `id` of the event's item if it carried the key twice (web_search), else None.

    orjson keeps the last of duplicate keys; only the stdlib parser can see the first, and it is
    much slower, so this runs only for lines where `"id"` occurs twice.
    """
    try:
        obj = json.loads(data, object_pairs_hook=_keep_first_id)
    except (ValueError, RecursionError):
        return None
    item = obj.get("item") if isinstance(obj, dict) else None
    if not isinstance(item, _DupIds):
        return None
    first, second = item.get("id"), item.second_id
    if not isinstance(first, (str, int)) or not isinstance(second, (str, int)):
        return None
    # The stdlib parser accepts lone surrogates, which could not be encoded later.
    return _safe_text(str(first)), _safe_text(str(second))


def _safe_text(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def event_timestamp(value: Any) -> str | None:
    """The event's own time as RFC 3339, if it carries a valid one (some fork builds add it)."""
    if isinstance(value, str):
        if len(value) > 40 or not _RFC3339.match(value):
            return None
        text = value[:10] + "T" + value[11:]
        text = text[:-1] + "Z" if text[-1] in "zZ" else text
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return text
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value  # epoch milliseconds or seconds
        if not 946_684_800 <= seconds <= 4_102_444_800:  # 2000 .. 2100: anything else is not a time
            return None
        moment = datetime.fromtimestamp(seconds, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return None


def trim_head(data: bytes) -> bytes:
    """Drop an incomplete UTF-8 sequence at the end of a cut-off head."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:  # a lead byte: keep it only if its sequence is complete
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= need else data[:-back]
    return data


def trim_tail(data: bytes) -> bytes:
    """Drop continuation bytes at the start of a cut-off tail."""
    start = 0
    while start < min(3, len(data)) and 0x80 <= data[start] < 0xC0:
        start += 1
    return data[start:]

"""Query parameters: cursors round-trip, and a bad value names its parameter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.datastructures import QueryParams

from agent_comms.web.params import BadParameter, decode_cursor, encode_cursor, filters, integer, kinds


def test_cursors_round_trip() -> None:
    key = (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "uid", ".codex-x-events.jsonl", 7, 99)
    q = QueryParams({"after": encode_cursor(key)})
    assert decode_cursor(q, "after", (datetime, str, str, int, int)) == key


@pytest.mark.parametrize("raw", ["%%%", "bm90IGpzb24", "WzFd", "WyJhIiwiYiIsMSwxXQ"])
def test_foreign_cursors_are_refused(raw: str) -> None:
    with pytest.raises(BadParameter, match="after"):
        decode_cursor(QueryParams({"after": raw}), "after", (str, str, int, str))


def test_values_out_of_range_name_the_parameter() -> None:
    with pytest.raises(BadParameter, match=r"limit: 0 is out of range 1\.\.10"):
        integer(QueryParams({"limit": "0"}), "limit", default=5, low=1, high=10)
    with pytest.raises(BadParameter, match="kind"):
        kinds(QueryParams({"kind": "status,Robert'); DROP TABLE"}))
    with pytest.raises(BadParameter, match="since"):
        filters(QueryParams({"since": "last tuesday"}))


def test_filters_accept_lists_and_naive_times_as_utc() -> None:
    f = filters(QueryParams("agent=a,b&agent=c&kind=status&since=2026-01-01T00:00:00"))
    assert f.agents == ("a", "b", "c") and f.kinds == ("status",)
    assert f.since == datetime(2026, 1, 1, tzinfo=UTC)

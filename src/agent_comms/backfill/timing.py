"""Times for backfilled lines that carry none of their own (Codex events carry no time).

The best estimate is a stored neighbour in the same file (the previous line's time, else the
next line's), else the file's modification time. The body then says so in
`attrs.timestamp_estimated`.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime


class TimeEstimator:
    def __init__(self, stored: dict[int, datetime], file_mtime: float) -> None:
        self._lines = sorted(stored)
        self._times = stored
        self._mtime = datetime.fromtimestamp(file_mtime, UTC)

    def estimate(self, line: int) -> tuple[datetime, str]:
        """(time, how): how is `neighbour` or `file_mtime`."""
        lines = self._lines
        if lines:
            i = bisect.bisect_left(lines, line)
            if i > 0:
                return self._times[lines[i - 1]], "neighbour"
            return self._times[lines[i]], "neighbour"
        return self._mtime, "file_mtime"

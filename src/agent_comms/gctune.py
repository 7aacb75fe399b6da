"""Garbage-collector settings for the long-running, allocation-heavy commands.

Each line or message allocates many short-lived objects (dicts, strings, futures); with the
default gen-0 threshold (700) the collector runs thousands of times a second and walks the
objects created at start-up (imported modules, compiled regexes) again and again. Freezing those
and raising the threshold cut the consumer's CPU per message by about 20 % in the ingest
benchmark (bench/README.md); reference cycles are still collected.
"""

from __future__ import annotations

import gc
from typing import Final

GEN0_THRESHOLD: Final = 50_000


def tune_for_throughput() -> None:
    """Call once, after start-up imports, before the hot loop."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)

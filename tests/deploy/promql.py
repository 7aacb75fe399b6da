"""Metric names in PromQL expressions, and the metric list in observability/README.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

# Words that look like metric names in PromQL but are operators or modifiers.
_KEYWORDS: Final = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "atan2",
        "start",
        "end",
    }
)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# An identifier not inside a number (1e3), a Grafana variable ($__rate_interval) or a dotted name.
_IDENT = re.compile(r"(?<![\w.:$])[A-Za-z_:][\w:]*")
_HISTOGRAM_SUFFIXES: Final = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """Every metric an expression selects: identifiers that are not functions or keywords.

    Label matchers, range selectors, grouping clauses and strings are removed first, so label
    names and values never count as metrics.
    """
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue  # a function or aggregation call, or an operator
        names.add(name)
    return names


def documented_metrics(readme: Path) -> set[str]:
    """Metric names in the tables of observability/README.md (first column, in backticks)."""
    names = set()
    for line in readme.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|", line)
        if match:
            names.add(match.group(1))
    return names


def undocumented(names: set[str], documented: set[str]) -> set[str]:
    """Names neither listed nor the _bucket/_sum/_count series of a listed histogram."""
    missing = set()
    for name in names:
        if name in documented:
            continue
        base = next((name[: -len(s)] for s in _HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if base not in documented:
            missing.add(name)
    return missing

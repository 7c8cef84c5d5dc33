"""Render metric dicts as a markdown table (the summary `ocr2-eval` prints and `ocr2-report` commits to docs/).

Pure formatting, no metric logic: nested dicts are flattened to dotted column names, floats get a fixed number
of decimals, missing values (None, or a key a row lacks) print as "n/a" so a metric that was not computed
(e.g. CDM) is visibly absent rather than silently zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

MISSING = "n/a"


def flatten(metrics: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """`{"table": {"TEDS": 0.8}}` -> `{"table.TEDS": 0.8}`; lists and other values are kept as they are."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


def format_value(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    text = str(value).replace("\n", " ")
    return text.replace("|", "\\|")  # a literal pipe would split the cell


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def render_markdown_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
    digits: int = 4,
) -> str:
    """A GitHub-flavoured markdown table, one row per metric dict.

    `columns` picks and orders the (flattened) keys; by default every key, in first-seen order. `headers` renames
    columns for display. Numeric columns are right-aligned.
    """
    flat = [flatten(r) for r in rows]
    if columns is None:
        columns = list(dict.fromkeys(k for r in flat for k in r))
    if not columns:
        return ""
    headers = headers or {}
    head = "| " + " | ".join(format_value(headers.get(c, c)) for c in columns) + " |"
    align = "|" + "|".join(
        "---:" if any(_is_number(r.get(c)) for r in flat) else "---" for c in columns
    ) + "|"
    body = ["| " + " | ".join(format_value(r.get(c), digits) for c in columns) + " |" for r in flat]
    return "\n".join([head, align, *body]) + "\n"

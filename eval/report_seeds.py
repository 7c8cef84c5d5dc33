"""Runs that differ only by seed: one row per configuration with the mean ± standard deviation over its seeds.

`ocr2-report` labels runs by the swept config keys; when several runs share a label (the same sweep repeated with
`seed=1`, `seed=2`, ...), a single run says little (a toy ablation's ranking can flip with the seed), so the report
adds this table and per-metric plots with every seed's value drawn over the mean.
"""

from __future__ import annotations

import statistics
from typing import Any


def group_rows(rows: list[dict[str, Any]], key: str = "run") -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by `key`, in order of first appearance."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return groups


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the values present (std None for fewer than two)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def format_mean_std(values: list[float | None], digits: int = 3) -> str | None:
    mean, std = mean_std(values)
    if mean is None:
        return None
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def seed_summary(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """One row per label: `runs`, the seeds, and "mean ± std" of each column over the label's runs."""
    out = []
    for label, group in group_rows(rows).items():
        summary: dict[str, Any] = {"run": label, "runs": len(group),
                                   "seeds": ", ".join(str(r.get("seed")) for r in group)}
        summary.update({c: format_mean_std([r.get(c) for r in group]) for c in columns})
        out.append(summary)
    return out

"""Repeat statistics for the benchmarks: median, spread, the noise rule, a least-squares slope, progress.

A benchmark figure is the median of repeats, shown with its spread: the interquartile range over the median
(robust to one outlier among five repeats, unlike max-min). A figure whose spread exceeds the threshold, or a
derived figure that is negative or not finite (a rate from a negative time difference, say), is not a
measurement: the tables print `noisy: rerun` in its place rather than a number someone might quote.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys
import time

NOISY = "noisy: rerun"
DEFAULT_MAX_SPREAD = 0.10  # relative IQR; a quiet 2-core machine gives 0.01-0.05 on these workloads


@dataclasses.dataclass
class Sample:
    """Repeated measurements of one quantity (seconds, bytes, ...)."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        """(Q3 - Q1) / median; 0 for a single value, inf when the median is not positive."""
        return relative_iqr(self.values)


def relative_iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    med = statistics.median(values)
    if not med > 0:
        return math.inf
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / med


def refused(value: float, spread: float = 0.0, max_spread: float = DEFAULT_MAX_SPREAD) -> bool:
    """The noise rule: too much spread, or a figure that cannot be a measurement (negative, nan, inf)."""
    return not math.isfinite(value) or value < 0 or not spread <= max_spread


def cell(value: float, spread: float = 0.0, max_spread: float = DEFAULT_MAX_SPREAD, fmt: str = "{:.3f}") -> str:
    """`value` formatted, or `noisy: rerun` when the noise rule refuses it."""
    return NOISY if refused(value, spread, max_spread) else fmt.format(value)


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares y = intercept + slope * x: (slope, intercept, r²). Needs two distinct x values."""
    n = len(xs)
    if n != len(ys) or n < 2:
        raise ValueError("need at least two (x, y) points")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("all x values are equal")
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return slope, intercept, r2


class Progress:
    """One line per finished unit on stderr: done/total, elapsed, rate, ETA (tables go to stdout)."""

    def __init__(self, total: int, what: str = "measurements"):
        self.total, self.what, self.done, self.start = total, what, 0, time.perf_counter()

    def step(self, label: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        per = elapsed / self.done
        eta = per * max(self.total - self.done, 0)
        print(f"[{self.done}/{self.total} {self.what}] {label}: {elapsed:.0f} s elapsed, {per:.1f} s each, "
              f"ETA {eta:.0f} s", file=sys.stderr, flush=True)

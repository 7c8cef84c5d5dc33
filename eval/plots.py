"""PNG plots of runs: loss curves and metric bars (matplotlib, Agg backend: no display needed).

Used by `ocr2-report` (eval/report.py) and the demo (eval/demo.py). Each plot is built by a `*_figure` function
that returns the matplotlib Figure (tests inspect it) and saved by the function of the plain name, which returns
the PNG's path. What every plot guarantees, so that it reads right at a glance:

- the axis label and the title say which direction is better (`METRIC_DIRECTION`: edit distances, repetition
  and losses are lower-is-better; `vision_gain`, TEDS, CDM and precision are higher-is-better); a metric not in
  the table says so rather than guessing, unless the caller passes `lower_is_better`;
- a missing value (None or NaN) is drawn as missing: no bar, an "n/a" label where the bar would be, never 0;
- a metric whose values are all 0 says "all values are 0" instead of showing empty axes;
- long titles and run labels are wrapped (and the x labels rotated when they still would not fit) so that
  nothing overlaps or runs off the figure.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# Which direction is better, per metric (True: lower is better).
METRIC_DIRECTION: dict[str, bool] = {
    "page_ned": True, "text_edit": True, "reading_order_edit": True, "repetition_rate": True,
    "formula_edit": True, "edit_dist": True, "final_loss": True, "loss": True, "page_loss": True,
    "vision_gain": False, "visual_variation": False, "table_teds": False, "table_teds_s": False,
    "formula_cdm": False, "overall": False, "precision": False,
}
# What a metric measures, for its axis label.
METRIC_LABELS: dict[str, str] = {
    "page_ned": "page NED (normalised edit distance)",
    "text_edit": "text-block edit distance",
    "reading_order_edit": "reading-order edit distance",
    "repetition_rate": "share of pages that hit the token limit",
    "vision_gain": "vision gain: blank-page loss - page loss (nats/token)",
    "visual_variation": "page-to-page share of the vision output",
}
BAR_COLOR = "#4c72b0"
MISSING = "n/a"
ALL_ZERO = "all values are 0"
NO_VALUES = "no values (all n/a)"
_FONT_PT = 8  # tick-label font size
_MAX_WIDTH_IN = 16.0
_ROTATION = 35  # degrees, for x labels too long to stand upright


def metric_direction(metric: str, lower_is_better: bool | None = None) -> bool | None:
    """True: lower is better, False: higher is better, None: not known. An explicit `lower_is_better` wins."""
    if lower_is_better is not None:
        return bool(lower_is_better)
    return METRIC_DIRECTION.get(metric)


def direction_text(metric: str, lower_is_better: bool | None = None) -> str:
    d = metric_direction(metric, lower_is_better)
    return {True: "lower is better", False: "higher is better", None: "no better direction known"}[d]


def is_missing(v) -> bool:
    """None, NaN or anything that is not a number."""
    if v is None:
        return True
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def _fmt(v: float) -> str:
    return f"{v:.3f}" if v == 0 or abs(v) >= 1e-3 else f"{v:.2e}"


def _wrap(text: str, width: int, break_words: bool = False) -> str:
    """Wrap at spaces (the report's labels are "key=value, key=value"), keeping explicit newlines; words longer
    than a line are cut only with `break_words`."""
    return "\n".join(textwrap.fill(line, max(8, width), break_long_words=break_words, break_on_hyphens=False)
                     for line in str(text).split("\n"))


def _chars(width_in: float, font_pt: float) -> int:
    """Characters of a `font_pt` font that fit `width_in` inches (DejaVu Sans averages ~0.6 em)."""
    return int(width_in * 72 / (font_pt * 0.6))


def _title(ax, text: str, fig_width_in: float, font_pt: float = 10) -> None:
    ax.set_title(_wrap(text, _chars(fig_width_in * 0.9, font_pt)), fontsize=font_pt)


def _ylabel(ax, metric: str, lower_is_better: bool | None, fig_height_in: float) -> None:
    label = f"{METRIC_LABELS.get(metric, metric)}\n({direction_text(metric, lower_is_better)})"
    ax.set_ylabel(_wrap(label, _chars(fig_height_in * 0.8, 9)), fontsize=9)


def _x_labels(ax, names: list[str], width_in: float) -> None:
    """Run labels wrapped (at spaces) to the width of one bar. When a word still would not fit, every label is
    rotated by `_ROTATION` (anchored at its tick) and wrapped into few enough lines that neighbouring labels,
    parallel strips one tick apart, cannot touch (a word longer than a line is cut, so none runs off the
    figure)."""
    spacing_in = width_in * 0.85 / max(1, len(names))
    per_bar = _chars(spacing_in, _FONT_PT)
    wrapped = [_wrap(n, per_bar) for n in names]
    longest = max((len(line) for w in wrapped for line in w.split("\n")), default=0)
    ax.set_xticks(range(len(names)))
    if longest > per_bar:
        line_in = _FONT_PT * 1.25 / 72
        max_lines = max(1, int(0.8 * spacing_in * math.sin(math.radians(_ROTATION)) / line_in))
        labels = [_wrap(n, max(28, math.ceil(len(n) / max_lines)), break_words=True) for n in names]
        ax.set_xticklabels(labels, rotation=_ROTATION, ha="right", rotation_mode="anchor", fontsize=_FONT_PT)
    else:
        ax.set_xticklabels(wrapped, fontsize=_FONT_PT)
    ax.set_xlim(-0.6, len(names) - 0.4)


def _size(n_bars: int) -> tuple[float, float]:
    return min(_MAX_WIDTH_IN, max(4.8, 1.4 * n_bars + 1.5)), 4.2


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=10, color="#555555",
            bbox={"boxstyle": "round", "facecolor": "#f2f2f2", "edgecolor": "#bbbbbb"})


def _finish_value_axis(ax, present: list[float], headroom: float = 0.15) -> None:
    """Zero line; a [0, 1] axis with a note when there is nothing to show; room above the value labels."""
    ax.axhline(0, color="black", linewidth=0.8)
    if not present:
        ax.set_ylim(0, 1)
        _note(ax, NO_VALUES)
    elif all(v == 0 for v in present):
        ax.set_ylim(-0.05, 1)
        _note(ax, ALL_ZERO)
    else:
        lo, hi = min(0.0, *present), max(0.0, *present)
        pad = headroom * (hi - lo)
        ax.set_ylim(lo - (pad if lo < 0 else 0), hi + (pad if hi > 0 else 0.05 * (hi - lo)))
    ax.grid(axis="y", alpha=0.3)


def _missing_label(ax, x: float) -> None:
    ax.text(x, 0, MISSING, ha="center", va="bottom", fontsize=9, color="#666666", style="italic")


def _value_label(ax, x: float, y: float, text: str) -> None:
    """`text` a few points above a positive `y` (below a negative one), clear of a marker drawn there."""
    up = y >= 0
    ax.annotate(text, (x, y), xytext=(0, 4 if up else -4), textcoords="offset points", ha="center",
                va="bottom" if up else "top", fontsize=_FONT_PT)


def _save(fig: Figure, path: str | Path) -> Path:
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


# ------------------------------------------------------------------------------------------------ loss curves
def loss_figure(curves: dict[str, list[tuple[int, float | None]]], title: str = "training loss") -> Figure:
    """One line per run; missing losses (None/NaN) are gaps left out, a run without any is named in the legend."""
    width, height = 7.5, 4.2
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    drawn = 0
    for name, points in curves.items():
        points = [(s, v) for s, v in points if not is_missing(v)]
        label = _wrap(name, 32)
        if points:
            ax.plot(*zip(*points), label=label, linewidth=1.2)
            drawn += 1
        else:
            ax.plot([], [], label=f"{label} ({MISSING}: no loss logged)", linestyle="none")
    if not drawn:
        _note(ax, "no loss values logged")
    ax.set_xlabel("step")
    ax.set_ylabel("next-token loss (lower is better)", fontsize=9)
    _title(ax, f"{title} (lower is better)", width)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        if len(curves) > 6:  # many runs: the legend beside the axes, not over the curves
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        else:
            ax.legend(fontsize=8)
    return fig


def loss_curves(curves: dict[str, list[tuple[int, float | None]]], path: str | Path,
                title: str = "training loss") -> Path:
    return _save(loss_figure(curves, title), path)


# ------------------------------------------------------------------------------------------------ metric bars
def bars_figure(values: dict[str, dict[str, float | None]], metric: str, lower_is_better: bool | None = None
                ) -> Figure:
    """One bar per run (or per 'before'/'after') for one metric; see the module docstring for what it shows."""
    names = list(values)
    width, height = _size(len(names))
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    present = []
    for i, name in enumerate(names):
        v = (values[name] or {}).get(metric)
        if is_missing(v):
            _missing_label(ax, i)
            continue
        v = float(v)
        present.append(v)
        ax.bar(i, v, color=BAR_COLOR, width=0.7)
        _value_label(ax, i, v, _fmt(v))
    _finish_value_axis(ax, present)
    _x_labels(ax, names, width)
    _ylabel(ax, metric, lower_is_better, height)
    _title(ax, f"{metric} per run ({direction_text(metric, lower_is_better)})", width)
    return fig


def metric_bars(values: dict[str, dict[str, float | None]], metric: str, path: str | Path,
                lower_is_better: bool | None = None) -> Path:
    """`bars_figure` as a PNG. `lower_is_better`: None takes the metric's direction from `METRIC_DIRECTION`."""
    return _save(bars_figure(values, metric, lower_is_better), path)


def spread_figure(values: dict[str, list[float | None]], metric: str, lower_is_better: bool | None = None
                  ) -> Figure:
    """One bar per configuration at the mean over its runs (seeds), with each run's value drawn as a dot: the
    seed-to-seed spread is visible next to the differences between configurations. Missing runs are left out of
    the mean and counted in its label; a configuration with none gets no bar and "n/a"."""
    names = list(values)
    width, height = _size(len(names))
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    present_all = []
    for i, name in enumerate(names):
        raw = list(values[name])
        xs = [float(v) for v in raw if not is_missing(v)]
        if not xs:
            _missing_label(ax, i)
            continue
        present_all += xs
        mean = sum(xs) / len(xs)
        ax.bar(i, mean, color=BAR_COLOR, alpha=0.6, width=0.7)
        ax.scatter([i] * len(xs), xs, color="black", s=14, zorder=3)
        missing = len(raw) - len(xs)
        _value_label(ax, i, max(0.0, *xs) if mean >= 0 else min(0.0, *xs),
                     f"mean {_fmt(mean)}" + (f"\n({missing} of {len(raw)} {MISSING})" if missing else ""))
    _finish_value_axis(ax, present_all, headroom=0.3)  # two-line labels above the highest dot
    _x_labels(ax, names, width)
    _ylabel(ax, metric, lower_is_better, height)
    _title(ax, f"{metric}: mean over seeds (bars), each seed (dots); {direction_text(metric, lower_is_better)}",
           width)
    return fig


def metric_spread(values: dict[str, list[float | None]], metric: str, path: str | Path,
                  lower_is_better: bool | None = None) -> Path:
    """`spread_figure` as a PNG. `lower_is_better`: None takes the metric's direction from `METRIC_DIRECTION`."""
    return _save(spread_figure(values, metric, lower_is_better), path)

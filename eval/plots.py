"""PNG plots of runs: loss curves and metric bars (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def loss_curves(curves: dict[str, list[tuple[int, float]]], path: str | Path, title: str = "training loss") -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in curves.items():
        points = [(s, l) for s, l in points if l is not None]
        if points:
            ax.plot(*zip(*points), label=name, linewidth=1.2)
    ax.set(xlabel="step", ylabel="next-token loss", title=title)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def metric_bars(values: dict[str, dict[str, float | None]], metric: str, path: str | Path,
                lower_is_better: bool = True) -> Path:
    """One bar per run (or per 'before'/'after') for one metric."""
    names = list(values)
    heights = [values[n].get(metric) or 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(names)), 3.6))
    ax.bar(names, heights, color="#4c72b0")
    for i, h in enumerate(heights):
        ax.text(i, h, f"{h:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set(ylabel=metric + (" (lower is better)" if lower_is_better else " (higher is better)"), title=metric)
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def metric_spread(values: dict[str, list[float | None]], metric: str, path: str | Path,
                  lower_is_better: bool = True) -> Path:
    """One bar per configuration at the mean over its runs (seeds), with each run's value drawn as a dot: the
    seed-to-seed spread is visible next to the differences between configurations."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(names)), 3.6))
    for i, name in enumerate(names):
        xs = [v for v in values[name] if v is not None]
        mean = sum(xs) / len(xs) if xs else 0.0
        ax.bar(i, mean, color="#4c72b0", alpha=0.6)
        ax.scatter([i] * len(xs), xs, color="black", s=14, zorder=3)
        ax.text(i, mean, f"{mean:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set(ylabel=metric + (" (lower is better)" if lower_is_better else " (higher is better)"),
           title=f"{metric}: mean over seeds (bars), each seed (dots)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)

"""`python -m eval.research.layout_breakdown RUNS... --out DIR`: page NED and reading-order figures of scored runs,
split by the pages' layout type, mean ± std over the seeds of each variant.

A mask ablation on a mix of pages (one text column, read in raster order, and several columns, read column by
column) asks its question on the second kind only: a variant that reads one-column pages well and column pages
badly has not learnt to re-order. `ocr2-report` gives one figure per run over all pages; this splits it.

Input: runs already scored by `ocr2-report RUNS --evaluate` (`<run>/eval/metrics.json` with per-page figures and,
for masks with flow queries, `<run>/eval/reading_order.json` with its `by_layout` table). Each page's layout type
is computed from its ground-truth blocks as the reading-order score does (eval/research/reading_order_pages.py:
`k-column`, k = the most ordered blocks side by side), on the run's own validation pages. Runs that share a label
(`--keys`, as in ocr2-report) differ by seed: per run the mean over its pages of a layout, then mean ± sample std
over the runs.

Out: `layout_breakdown.md` (table), `layout_breakdown.json` (per run and per variant), `layout_breakdown.png`
(page NED per variant and layout, each seed a dot over the mean bar).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
from pathlib import Path

from eval.pages import iter_pages
from eval.report import find_runs, run_config, run_label
from eval.report_seeds import format_mean_std, group_rows
from eval.report_table import render_markdown_table
from eval.research.reading_order_pages import layout_type

PAGE_FIGURES = ("page_ned", "reading_order_edit")  # per page, from <run>/eval/metrics.json
# per layout, from <run>/eval/reading_order.json (the layer-averaged argmax path). tau_reading is computed over the
# queries whose token lies on a block (`covered`): a raster path that skips the tokens of a column scores 1 on it.
FLOW_FIGURES = ("tau_raster", "monotone_raster", "tau_reading", "covered")


@functools.lru_cache(maxsize=8)
def page_layouts(data: str, split: str, limit: int | None) -> dict[str, str]:
    """stem -> layout type of every page of the split (its ground-truth blocks). Cached: the runs of a sweep share
    their validation pages, which are read once. Do not mutate the result."""
    out = {}
    for page in iter_pages(data, split, limit):
        out[page.stem] = layout_type(page.gt_page.get("layout_dets") or [], page.attributes)
    return out


def run_figures(run: Path) -> dict[str, dict[str, float | int]]:
    """layout -> {pages, page_ned, reading_order_edit, tau_raster, tau_reading} of one scored run."""
    metrics_path = run / "eval" / "metrics.json"
    if not metrics_path.exists():
        raise FileNotFoundError(f"{metrics_path}: the run is not scored; run `ocr2-report {run} --evaluate` first")
    metrics = json.loads(metrics_path.read_text())
    pages = metrics["pages"]
    layouts = page_layouts(run_config(run)["data"]["path"], "validation", len(pages))
    missing = sorted(set(pages) - set(layouts))
    if missing:
        raise ValueError(f"{metrics_path}: pages {missing[:3]} are not in the run's validation split")
    flow_path = run / "eval" / "reading_order.json"
    flow = json.loads(flow_path.read_text()).get("by_layout", {}) if flow_path.exists() else {}
    out: dict[str, dict] = {}
    for name in sorted(set(layouts[s] for s in pages)):
        group = [pages[s] for s in pages if layouts[s] == name]
        row: dict = {"pages": len(group)}
        for fig in PAGE_FIGURES:
            values = [p[fig] for p in group if p.get(fig) is not None]
            row[fig] = statistics.fmean(values) if values else None
        for fig in FLOW_FIGURES:
            row[fig] = flow.get(name, {}).get("argmax", {}).get(fig)
        out[name] = row
    return out


def breakdown(runs: list[Path], keys: list[str]) -> dict:
    """{"runs": [{run, label, seed, layouts}], "variants": [table rows]}."""
    per_run = []
    for run in runs:
        cfg = run_config(run)
        per_run.append({"run": str(run), "label": run_label(run, cfg, keys), "seed": cfg.get("seed"),
                        "layouts": run_figures(run)})
    rows = []
    for label, group in group_rows(per_run, "label").items():
        for name in sorted({n for r in group for n in r["layouts"]}):
            have = [r for r in group if name in r["layouts"]]
            row = {"variant": label, "layout": name, "seeds": ", ".join(str(r["seed"]) for r in have),
                   "pages": sum(r["layouts"][name]["pages"] for r in have)}
            for fig in (*PAGE_FIGURES, *FLOW_FIGURES):
                values = [r["layouts"][name][fig] for r in have]
                row[fig] = format_mean_std([v for v in values if v is not None]) or "n/a"
                row[f"{fig}_values"] = values
            rows.append(row)
    return {"runs": per_run, "variants": rows}


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r["variant"] for r in result["variants"]))
    layouts = sorted({r["layout"] for r in result["variants"]})
    width = 0.8 / max(1, len(layouts))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(variants) + 2), 4.2), layout="constrained")
    for j, name in enumerate(layouts):
        xs, means = [], []
        for i, variant in enumerate(variants):
            row = next((r for r in result["variants"] if r["variant"] == variant and r["layout"] == name), None)
            values = [v for v in (row or {}).get("page_ned_values", []) if v is not None]
            if not values:
                continue
            x = i + (j - (len(layouts) - 1) / 2) * width
            xs.append(x)
            means.append(statistics.fmean(values))
            ax.scatter([x] * len(values), values, color="black", s=12, zorder=3)
        ax.bar(xs, means, width * 0.95, label=name)
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels([v.replace(", ", "\n") for v in variants], fontsize=8)
    ax.set_ylabel("page NED (lower is better)")
    ax.set_ylim(0, 1)
    ax.set_title("Page NED by layout type: mean over seeds (bars), each seed (dots)")
    ax.legend(title="layout", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    columns = ["variant", "layout", "seeds", "pages", *PAGE_FIGURES, *FLOW_FIGURES]
    table = render_markdown_table(result["variants"], columns)
    (out / "layout_breakdown.md").write_text(
        "Per variant and layout type: mean ± sample std over seeds of each run's mean over its pages of that layout "
        "(pages: all seeds together). tau: the flow queries' layer-averaged argmax path vs raster / reading order "
        "(n/a without flow queries); monotone_raster: share of steps not going back in raster order; covered: share of "
        "queries on a block, over which tau_reading is computed.\n\n" + table + "\n")
    (out / "layout_breakdown.json").write_text(json.dumps(result, indent=1) + "\n")
    figure(result, out / "layout_breakdown.png")
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="scored run directories, or folders holding them")
    p.add_argument("--keys", default="model.encoder.mask,model.encoder.visual_positions,model.encoder.query_positions",
                   help="config keys that label the variants (runs sharing a label are seeds of one variant)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    runs = find_runs(args.runs)
    if not runs:
        raise SystemExit(f"layout_breakdown: no runs (metrics.jsonl) under {args.runs}")
    result = breakdown(runs, [k for k in args.keys.split(",") if k])
    print(write_outputs(result, Path(args.out)))
    print(f"layout_breakdown: {args.out}/layout_breakdown.md, .json, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`ocr2-report`: training runs (a multirun sweep, or run directories) -> a markdown table and PNG plots.

For each run: its resolved config (the swept values), the loss curve (metrics.jsonl) and held-out scores
(`<run>/eval/metrics.json`, computed here with `--evaluate` when missing) and the flow queries' reading-order
score (`<run>/eval/reading_order.json`, likewise) and the decoder-side query ablations' page-NED deltas
(`<run>/eval/query_ablation.json`, likewise; eval/research/query_ablation.py). Output: `report.md` (table with the
scale and protocol), `loss.png`, and one bar chart per metric (`reading_order_edit.png`, `page_ned.png`, ...).
Several sweeps of the same variants with different seeds (`ocr2-report multirun/a multirun/a_seed1 ...`) add a
mean ± std table per variant and `<metric>_seeds.png` (eval/report_seeds.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import yaml

from eval.plots import loss_curves, metric_bars, metric_spread
from eval.report_seeds import group_rows, seed_summary
from eval.report_table import render_markdown_table
from ocr2.json_lines import read_json_lines

# The reading-order score of the flow queries (eval/research/reading_order_study.py: `<run>/eval/reading_order.json`;
# the layer-averaged attention's argmax path; n/a for masks without queries).
READING_ORDER = ["tau_raster", "tau_reading"]
# How much the decoder depends on the order of what it is fed: page NED change when the flow outputs are reversed,
# shuffled or taken from another page (eval/research/query_ablation.py; positive = worse than as fed).
QUERY_ABLATIONS = ("reverse", "shuffle", "other_page")
QUERY_DELTAS = [f"delta_{a}" for a in QUERY_ABLATIONS]
METRICS = ["page_ned", "text_edit", "reading_order_edit", "repetition_rate", "vision_gain", *READING_ORDER,
           *QUERY_DELTAS]


def find_runs(paths: list[str]) -> list[Path]:
    runs = []
    for p in map(Path, paths):
        if (p / "metrics.jsonl").exists():
            runs.append(p)
        else:
            runs += sorted(d.parent for d in p.rglob("metrics.jsonl") if "eval" not in d.parts)
    return runs


def read_metrics(run: Path) -> list[dict]:
    """A run's metrics.jsonl; a line torn by a kill mid-write (the last one) is left out, not fatal."""
    return read_json_lines(run / "metrics.jsonl")


def run_config(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def run_label(run: Path, cfg: dict, keys: list[str]) -> str:
    """`key=value` of each config key (last path component), or the directory name when there are none."""
    parts = []
    for key in keys:
        node = cfg
        for k in key.split("."):
            node = node.get(k) if isinstance(node, dict) else None
        parts.append(f"{key.split('.')[-1]}={node}")
    return ", ".join(parts) if parts else run.name


def evaluate_run(run: Path, limit: int, max_new_tokens: int | None = None, device: str | None = None) -> dict:
    """Score a run's latest checkpoint on its own validation pages, read the way it trained (its reading.json)."""
    from eval.harness import evaluate, protocol
    from eval.pages import iter_pages
    from eval.research.vision_reliance import vision_reliance
    from ocr2.pipeline import OCRPipeline

    data = run_config(run)["data"]["path"]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = OCRPipeline.from_pretrained(run, device=device, max_new_tokens=max_new_tokens, batch_size=16)
    pages = list(iter_pages(data, "validation", limit))
    result = evaluate(pipe, pages, run / "eval", info=protocol(pipe, str(run), data, "validation"))
    # Reading or guessing: held-out loss with blank pages minus loss with the real pages.
    result["summary"]["vision_gain"] = vision_reliance(pipe.model, pages, pipe.tokenizer, pipe.prompt,
                                                       pipe.recipe)["vision_gain"]
    (run / "eval" / "metrics.json").write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str))
    return result


def score_reading_order(run: Path, limit: int) -> None:
    """The reading-order score of a run's latest checkpoint on its validation pages, into `<run>/eval/`."""
    from eval.pages import iter_pages
    from eval.research.reading_order_study import score_pages, write_outputs
    from ocr2 import OCR2Model
    from ocr2.modeling.masks import get_mask_spec
    from ocr2.weights import resolve_model_dir

    cfg = run_config(run)
    if not get_mask_spec(cfg["model"]["encoder"]["mask"]).use_queries:
        return  # no flow queries (the raster mask): no query order to score
    model = OCR2Model.from_pretrained(resolve_model_dir(run))
    pages = iter_pages(cfg["data"]["path"], "validation", limit)
    write_outputs(score_pages(model, pages, progress=False), run / "eval")


def score_query_ablation(run: Path, limit: int, device: str | None = None) -> None:
    """The decoder-side query ablations of a run's latest checkpoint on its validation pages, into `<run>/eval/`."""
    from eval.pages import iter_pages
    from eval.research.query_ablation import query_ablation, write_outputs
    from ocr2.pipeline import OCRPipeline

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = OCRPipeline.from_pretrained(run, device=device, batch_size=16)
    pages = list(iter_pages(run_config(run)["data"]["path"], "validation", limit))
    write_outputs(query_ablation(pipe, pages, QUERY_ABLATIONS, progress=False), run / "eval")


def query_ablation_summary(run: Path) -> dict:
    path = run / "eval" / "query_ablation.json"
    summary = json.loads(path.read_text())["summary"] if path.exists() else {}
    return {f"delta_{a}": summary[a]["delta_ned"] if a in summary else None for a in QUERY_ABLATIONS}


def reading_order_summary(run: Path) -> dict:
    path = run / "eval" / "reading_order.json"
    summary = json.loads(path.read_text())["summary"] if path.exists() else {}
    return {k: summary.get(k) for k in READING_ORDER}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ocr2-report", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="multirun directories or run directories")
    p.add_argument("--out", default=None, help="output directory (default: the first argument)")
    p.add_argument("--keys", default="model.encoder.mask,model.encoder.query_ratio,model.encoder.residual",
                   help="config keys that label the runs")
    p.add_argument("--evaluate", action="store_true", help="score runs that have no eval/metrics.json yet")
    p.add_argument("--eval-pages", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="generation cap (default: the checkpoint's reading recipe; the tables in docs/ used 160)")
    p.add_argument("--device", default=None, help="where --evaluate reads the pages (default: cuda if available)")
    args = p.parse_args(argv)
    runs = find_runs(args.runs)
    if not runs:
        print(f"ocr2-report: no runs (metrics.jsonl) under {args.runs}")
        return 2
    out = Path(args.out or args.runs[0])
    out.mkdir(parents=True, exist_ok=True)
    keys = [k for k in args.keys.split(",") if k]
    configs = {run: run_config(run) for run in runs}
    labels = {run: run_label(run, configs[run], keys) for run in runs}
    varying = [k for i, k in enumerate(keys) if len({labels[r].split(", ")[i] for r in runs}) > 1]
    labels = {run: run_label(run, configs[run], varying) for run in runs} if varying else labels

    # Runs that share a label differ only by seed: each gets its seed in its own label, and a second table
    # (eval/report_seeds.py) gives mean ± std per configuration.
    seeds = {run: configs[run].get("seed") for run in runs}
    repeated = len(set(labels.values())) < len(runs)
    rows, curves, scores = [], {}, {}
    for run in runs:
        name = f"{labels[run]}, seed={seeds[run]}" if repeated else labels[run]
        steps = read_metrics(run)
        curves[name] = [(m["step"], m["loss"]) for m in steps]
        metrics_file = run / "eval" / "metrics.json"
        if not metrics_file.exists() and args.evaluate:
            evaluate_run(run, args.eval_pages, args.max_new_tokens, args.device)
        summary = json.loads(metrics_file.read_text())["summary"] if metrics_file.exists() else {}
        if args.evaluate and not (run / "eval" / "reading_order.json").exists():
            score_reading_order(run, args.eval_pages)
        if args.evaluate and not (run / "eval" / "query_ablation.json").exists():
            score_query_ablation(run, args.eval_pages, args.device)
        summary = {**summary, **reading_order_summary(run), **query_ablation_summary(run)}
        scores[name] = summary
        final = next((m["loss"] for m in reversed(steps) if m["loss"] is not None), None)
        rows.append({"run": name, "label": labels[run], "seed": seeds[run], "steps": steps[-1]["step"] if steps else 0,
                     "final_loss": final, **{m: summary.get(m) for m in METRICS}})
    table = render_markdown_table(rows, ["run", "steps", "final_loss", *METRICS])
    loss_curves(curves, out / "loss.png")
    for m in METRICS:
        if any(s.get(m) is not None for s in scores.values()):
            metric_bars(scores, m, out / f"{m}.png")
    if repeated:
        by_label = [dict(r, run=r["label"]) for r in rows]
        table += "\n\nAcross seeds (mean ± sample std):\n\n" + render_markdown_table(
            seed_summary(by_label, ["final_loss", *METRICS]), ["run", "runs", "seeds", "final_loss", *METRICS])
        for m in METRICS:
            groups = {label: [r[m] for r in group] for label, group in group_rows(by_label).items()}
            if any(v is not None for vs in groups.values() for v in vs):
                metric_spread(groups, m, out / f"{m}_seeds.png")
    (out / "report.md").write_text(f"{table}\n\nRuns: {', '.join(str(r) for r in runs)}\n")
    print(table)
    print(f"ocr2-report: report.md and plots in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

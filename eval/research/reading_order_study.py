"""`python -m eval.research.reading_order_study --model RUN --data DATASET`: the reading-order score of a checkpoint.

For each page (ocr2 dataset or the official OmniDocBench layout, through eval/pages.py) its global view is encoded
with the flow attention recorded (eval/research/flow_analysis.py), and the reading path of every layer, and of
the attention averaged over layers, is scored against raster order and the page's ground-truth reading order
(eval/research/reading_order.py; the grid mapping in reading_order_pages.py). Out, in `--out`:

- `reading_order.md`: the table by layer (mean over pages) and by layout type (the layer-averaged attention);
- `reading_order.png`: tau vs layer (argmax and centroid paths) and tau by layout type;
- `reading_order.json`: the summary (what `ocr2-report` shows), the tables as numbers and the protocol;
- `reading_order_pages.jsonl`: per page its figures per layer and path, and where every query attends
  (argmax token, centroid row/column) in every layer (`queries`) and in the layer-averaged map (`queries_mean`).

Python: `score_pages(model, pages)` -> the result dict; `write_outputs(result, out)`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Iterable

import torch

from eval.research.flow_analysis import flow_attention
from eval.research.reading_order import FIGURES, PATHS, query_places, view_figures
from eval.research.reading_order_pages import layout_type, reading_keys
from ocr2.modeling.model import OCR2Model
from ocr2.processing.reading import RELEASE_READING
from ocr2.processing.views import ViewRecipe, get_recipe

# What ocr2-report shows: the path of the layer-averaged attention, argmax placement.
SUMMARY_LAYER, SUMMARY_PATH = "mean", "argmax"
SUMMARY_FIGURES = ("tau_raster", "tau_reading", "monotone_raster", "jump_rate")


def analysed_recipe(model: OCR2Model, views: str | ViewRecipe | None = None) -> ViewRecipe:
    """The recipe whose global view is scored: `views`, else the model's reading recipe's."""
    cfg = model.config
    recipe = get_recipe(views or getattr(model, "reading", RELEASE_READING).views, cfg)
    if recipe.global_size not in cfg.encoder.query_view_sizes:
        raise ValueError(f"view recipe {recipe.name!r}: its {recipe.global_size}px global view has no flow-query "
                         f"table (the model has {list(cfg.encoder.query_view_sizes)})")
    return recipe


def _mean(values: Iterable[float]) -> float:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.fmean(kept) if kept else math.nan


def _means(records: list[dict], layer: str) -> dict[str, dict[str, float]]:
    return {path: {f: _mean(r["figures"][layer][path][f] for r in records) for f in FIGURES} for path in PATHS}


def aggregate(records: list[dict]) -> dict:
    """Page records -> {"summary", "by_layer", "by_layout"} (means over pages, NaN left out)."""
    layers = list(records[0]["figures"]) if records else []
    by_layout: dict[str, dict] = {}
    for name in sorted({r["layout"] for r in records}):
        group = [r for r in records if r["layout"] == name]
        by_layout[name] = {"pages": len(group), **_means(group, SUMMARY_LAYER)}
    by_layer = {layer: _means(records, layer) for layer in layers}
    summary = {"pages": len(records)}
    summary.update({f: by_layer[SUMMARY_LAYER][SUMMARY_PATH][f] if records else math.nan for f in SUMMARY_FIGURES})
    return {"summary": summary, "by_layer": by_layer, "by_layout": by_layout}


@torch.no_grad()
def score_pages(model: OCR2Model, pages: Iterable, views: str | ViewRecipe | None = None, batch_size: int = 8,
                progress: bool = True) -> dict:
    """pages: objects with `.stem`, `.image` (PIL), `.gt_page` (OmniDocBench entry) and `.attributes`
    (eval.pages.EvalPage). Returns {"summary", "by_layer", "by_layout", "pages": [records], "protocol"}."""
    from tqdm.auto import tqdm

    if not model.encoder.spec.use_queries:
        raise ValueError(f"mask {model.encoder.spec.name!r} has no flow queries: there is no query order to score")
    recipe = analysed_recipe(model, views)
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    records: list[dict] = []
    bar = tqdm(desc="reading order", unit="page", disable=not progress)
    batch: list[tuple] = []

    def flush():
        glob = torch.stack([recipe.views(img).global_view for _, img in batch]).to(param.device, param.dtype)
        attn = flow_attention(model, glob)  # (layers, B, n_q, n_v)
        side = math.isqrt(attn.shape[-1])
        for j, (page, img) in enumerate(batch):
            blocks = page.gt_page.get("layout_dets") or []
            keys = reading_keys(blocks, recipe, img.size, side)
            records.append({"stem": page.stem, "layout": layout_type(blocks, page.attributes),
                            "figures": view_figures(attn[:, j], keys), "queries": query_places(attn[:, j]),
                            "queries_mean": {k: v[0] for k, v in
                                             query_places(attn[:, j].mean(0, keepdim=True)).items()}})
        bar.update(len(batch))
        batch.clear()

    try:
        for page in pages:
            batch.append((page, page.image.convert("RGB")))
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    finally:
        bar.close()
        model.train(was_training)
    enc = model.config.encoder
    result = aggregate(records)
    result["pages"] = records
    result["protocol"] = {"views": recipe.name, "view_size": recipe.global_size, "mask": enc.mask,
                          "visual_positions": enc.visual_positions, "query_positions": enc.query_positions,
                          "layers": enc.num_layers, "summary": f"layer {SUMMARY_LAYER}, {SUMMARY_PATH} path"}
    return result


# ----------------------------------------------------------------------------------------- outputs


def _f(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def markdown_tables(result: dict) -> str:
    p = result["protocol"]
    lines = [f"Reading-order score: {result['summary']['pages']} pages, mask `{p['mask']}`, positions "
             f"`{p['visual_positions']}` / `{p['query_positions']}`, the {p['views']} global view "
             f"({p['view_size']}² px). tau: Kendall tau-b of query order vs raster order / vs the ground-truth "
             "reading order (1 = same order, -1 = reversed, 0 = unrelated); means over pages.", "",
             "| layer | tau_raster | tau_reading | monotone_raster | monotone_reading | jump_rate | visited | covered "
             "| tau_raster (centroid) | tau_reading (centroid) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for layer, fig in result["by_layer"].items():
        a, c = fig["argmax"], fig["centroid"]
        name = "mean of layers" if layer == "mean" else layer
        lines.append(f"| {name} | {_f(a['tau_raster'])} | {_f(a['tau_reading'])} | {_f(a['monotone_raster'])} | "
                     f"{_f(a['monotone_reading'])} | {_f(a['jump_rate'])} | {_f(a['visited'])} | {_f(a['covered'])} "
                     f"| {_f(c['tau_raster'])} | {_f(c['tau_reading'])} |")
    lines += ["", "By layout type (the layer-averaged attention, argmax path):", "",
              "| layout | pages | tau_raster | tau_reading | monotone_raster | monotone_reading | jump_rate |",
              "|---|---|---|---|---|---|---|"]
    for name, fig in result["by_layout"].items():
        a = fig["argmax"]
        lines.append(f"| {name} | {fig['pages']} | {_f(a['tau_raster'])} | {_f(a['tau_reading'])} | "
                     f"{_f(a['monotone_raster'])} | {_f(a['monotone_reading'])} | {_f(a['jump_rate'])} |")
    return "\n".join(lines) + "\n"


def figure(result: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(result["by_layer"])
    fig, (ax, ax_layout) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    x = list(range(len(layers)))
    styles = {("argmax", "tau_raster"): ("#4c72b0", "-"), ("argmax", "tau_reading"): ("#dd8452", "-"),
              ("centroid", "tau_raster"): ("#4c72b0", "--"), ("centroid", "tau_reading"): ("#dd8452", "--")}
    for (path, fig_name), (color, ls) in styles.items():
        ys = [result["by_layer"][layer][path][fig_name] for layer in layers]
        ax.plot(x, ys, ls, color=color, marker="o", ms=4, label=f"{fig_name.replace('tau_', 'vs ')} order, {path}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, ["mean" if layer == "mean" else layer for layer in layers], fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("encoder layer ('mean': attention averaged over layers)", fontsize=8)
    ax.set_ylabel("Kendall tau of query order (1: same order)", fontsize=8)
    ax.set_title("Which order do the flow queries follow, layer by layer?", fontsize=9)
    ax.legend(fontsize=7)
    names = list(result["by_layout"])
    width = 0.38
    for k, (fig_name, color) in enumerate((("tau_raster", "#4c72b0"), ("tau_reading", "#dd8452"))):
        vals = [result["by_layout"][n]["argmax"][fig_name] for n in names]
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        ax_layout.bar(xs, [0 if math.isnan(v) else v for v in vals], width, color=color,
                      label=fig_name.replace("tau_", "vs ") + " order")
        for xi, v in zip(xs, vals):
            if math.isnan(v):
                ax_layout.text(xi, 0.02, "n/a", ha="center", fontsize=7)
    ax_layout.axhline(0, color="grey", lw=0.8)
    ax_layout.set_xticks(range(len(names)), [f"{n}\n({result['by_layout'][n]['pages']} pages)" for n in names],
                         fontsize=8)
    ax_layout.set_ylim(-1.05, 1.05)
    ax_layout.set_ylabel("Kendall tau (layer-averaged attention, argmax)", fontsize=8)
    ax_layout.set_title("By layout type", fontsize=9)
    ax_layout.legend(fontsize=7)
    p = result["protocol"]
    fig.suptitle(f"Reading-order score: mask {p['mask']}, positions {p['visual_positions']}/{p['query_positions']}, "
                 f"{result['summary']['pages']} pages", fontsize=10)
    return fig


def _clean(value):
    """NaN -> None (JSON null), recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_outputs(result: dict, out: str | Path) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "reading_order.json", "pages": out / "reading_order_pages.jsonl",
             "table": out / "reading_order.md", "plot": out / "reading_order.png"}
    paths["json"].write_text(json.dumps(_clean({k: v for k, v in result.items() if k != "pages"}), indent=1) + "\n")
    with paths["pages"].open("w") as f:
        for record in result["pages"]:
            f.write(json.dumps(_clean(record)) + "\n")
    paths["table"].write_text(markdown_tables(result))
    fig = figure(result)
    fig.savefig(paths["plot"], dpi=110)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    from eval.sources import open_source
    from ocr2.weights import resolve_model_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a from_pretrained directory or a training run")
    p.add_argument("--data", required=True, help="an ocr2 dataset (ocr2-data ...) or the official OmniDocBench "
                                                 "layout (its JSON, or the folder holding it): pages with blocks")
    p.add_argument("--split", default=None, help="default: the split the dataset's builder wrote for evaluation")
    p.add_argument("--pages", type=int, default=32)
    p.add_argument("--views", default=None, help="view recipe (default: the checkpoint's reading recipe)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", default="reading_order", help="output directory")
    args = p.parse_args(argv)
    model = OCR2Model.from_pretrained(resolve_model_dir(args.model))
    if not model.encoder.spec.use_queries:
        print(f"reading_order_study: mask {model.config.encoder.mask!r} has no flow queries; nothing to score",
              file=sys.stderr)
        return 2
    source = open_source(args.data, args.split, args.pages)
    result = score_pages(model, source.pages, args.views, args.batch_size)
    result["protocol"]["data"] = source.describe()
    paths = write_outputs(result, args.out)
    print(markdown_tables(result))
    print(f"reading_order_study: {', '.join(str(v) for v in paths.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m eval.research.compression_study --model DIR --data DATASET`: the shape of DeepSeek-OCR's Fox table.

DeepSeek-OCR (v1, Table 2) reports OCR precision against the compression ratio (text tokens / vision tokens) at
several vision-token budgets. Here each budget is a view recipe (ocr2/processing/views.py), a way of showing the
page to the same model, and every page is bucketed by its ratio; one `OCRPipeline` reads all budgets, its
`.recipe` swapped per budget, and a page's vision tokens are its `<image>` positions (`recipe.image_tokens`, the
count the pipeline prompts with). Output: a markdown table (budget x ratio bin -> Fox precision, edit distance,
pages) and a PNG of precision against compression ratio, one line per budget.

Budgets by default: one contain-resized view (`single:S`, what `stage.views=[single:S]` training shows) at every
view size the checkpoint has a flow-query table for, plus the release's multi-crop views at the model's sizes
(`multi_crop`; `--no-crops` leaves it out, for models trained on single views only). `--modes tiny,small,...`:
v1's resolution modes instead (or any recipe names); the model needs query tables for their view sizes
(`ocr2.query_tables.with_query_tables` when building it). At toy scale, with the model of
`experiment=memory_tiers` (reads glyph-grid pages at 256/192/128 px):

    python -m eval.research.compression_study --model runs/memory_tiers --data data/demo --no-crops \
        --prompt plain_markdown --out docs/compression
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from eval.metrics import fox_page_metrics  # noqa: E402
from eval.pages import iter_pages  # noqa: E402
from eval.report_table import render_markdown_table  # noqa: E402
from ocr2.modeling.model import OCR2Model  # noqa: E402
from ocr2.pipeline import OCRPipeline  # noqa: E402
from ocr2.processing.text import load_tokenizer  # noqa: E402
from ocr2.processing.views import ViewRecipe, get_recipe  # noqa: E402
from ocr2.query_tables import require_query_tables  # noqa: E402
from ocr2.weights import resolve_model_dir  # noqa: E402


def budgets_for(model: OCR2Model, crops: bool = True) -> list[tuple[str, ViewRecipe]]:
    """(label, recipe): `single:S` for every view size S with a flow-query table, and with `crops` the
    `multi_crop` recipe at the model's global / crop sizes."""
    cfg = model.config
    sizes = sorted(int(s) for s in model.encoder.flow_queries) or [cfg.global_view_size]
    out = [(f"global {s}px", require_query_tables(cfg, f"single:{s}")) for s in sizes]
    if crops:
        out.append((f"global {cfg.global_view_size}px + {cfg.crop_size}px crops",
                    require_query_tables(cfg, get_recipe("multi_crop", cfg))))
    return out


def mode_budgets(names: str, config) -> list[tuple[str, ViewRecipe]]:
    """(label, recipe) for comma-separated recipe names, e.g. v1's resolution modes 'tiny,small,base'; each must
    have the model's flow-query tables (`config`)."""
    recipes = [require_query_tables(config, n.strip()) for n in names.split(",") if n.strip()]
    return [(f"{r.name} ({r.description.split(': ', 1)[-1]})" if r.description else r.name, r) for r in recipes]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="validation")
    p.add_argument("--pages", type=int, default=32)
    p.add_argument("--bins", default="0,1,2,4,8,16,32", help="compression-ratio bin edges")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--out", default="runs/compression")
    p.add_argument("--prompt", default="free_ocr", help="free_ocr (v1's Fox protocol) | markdown | a literal prompt")
    p.add_argument("--no-crops", action="store_true", help="single-view budgets only (no multi_crop budget)")
    p.add_argument("--modes", default=None,
                   help="budgets from view recipes instead, e.g. v1's modes tiny,small,base,large,gundam (the model "
                        "needs query tables for their view sizes: ocr2.query_tables.with_query_tables)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = resolve_model_dir(args.model)
    model = OCR2Model.from_pretrained(model_dir, dtype=torch.float32, device="cpu")
    budgets = mode_budgets(args.modes, model.config) if args.modes else budgets_for(model, crops=not args.no_crops)
    if not budgets:
        raise SystemExit("compression_study: no budgets (check --modes)")
    pipe = OCRPipeline(model, load_tokenizer(model_dir), views=budgets[0][1], prompt=args.prompt,
                       max_new_tokens=args.max_new_tokens, batch_size=16)
    pages = list(iter_pages(args.data, args.split, args.pages))
    edges = [float(x) for x in args.bins.split(",")]
    rows, lines = [], {}
    for label, recipe in budgets:
        pipe.recipe = recipe  # checked against the model's query tables when the budgets were made
        results = pipe.read_images([(pg.stem, pg.image) for pg in pages], progress=False)
        binned = defaultdict(list)
        for pg, r in zip(pages, results):
            vision = r.image_tokens  # recipe.image_tokens(page size, config): what the prompt held
            ratio = len(pipe.tokenizer.encode(pg.markdown)) / vision
            b = next((i for i in range(len(edges) - 1) if edges[i] <= ratio < edges[i + 1]), len(edges) - 2)
            binned[b].append(fox_page_metrics(r.markdown, pg.markdown) | {"ratio": ratio, "vision": vision})
        for b, ms in sorted(binned.items()):
            rows.append({"budget": label, "views": recipe.name,
                         "vision_tokens": round(sum(m["vision"] for m in ms) / len(ms)),
                         "ratio_bin": f"{edges[b]:g}-{edges[b + 1]:g}x", "pages": len(ms),
                         "precision": sum(m["precision"] for m in ms) / len(ms),
                         "edit_dist": sum(m["edit_dist"] for m in ms) / len(ms)})
            lines.setdefault(label, []).append((sum(m["ratio"] for m in ms) / len(ms), rows[-1]["precision"]))
    table = render_markdown_table(rows, ["budget", "vision_tokens", "ratio_bin", "pages", "precision", "edit_dist"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, pts in lines.items():
        ax.plot(*zip(*sorted(pts)), marker="o", label=label)
    ax.set(xlabel="compression ratio (text tokens / vision tokens)", ylabel="Fox precision", ylim=(0, 1.02),
           title="precision vs compression")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "compression.png", dpi=120)
    (out / "compression.md").write_text(table + "\n")
    (out / "compression.json").write_text(json.dumps(rows, indent=1))
    print(table)
    print(f"wrote {out / 'compression.md'} and {out / 'compression.png'}")


if __name__ == "__main__":
    main()

"""`python -m eval.research.compression_study --model DIR --data DATASET`: the shape of DeepSeek-OCR's Fox table.

DeepSeek-OCR (v1, Table 2) reports OCR precision against the compression ratio (text tokens / vision tokens) at
several vision-token budgets. Here each budget is a way of showing the page to the same model — global view only,
or global view plus crops, at every global size the checkpoint has flow-query tables for — and every page is
bucketed by its ratio. Output: a markdown table (budget x ratio bin -> Fox precision, edit distance, pages) and a
PNG of precision against compression ratio, one line per budget.

Global-only budgets show the page as one contain-resized view (`OCRPipeline(single_view=True)`, what
`data_mode=single_view` training shows); `--no-crops` leaves out the crop budget (for models trained on single
views only). At toy scale, with the model of `experiment=memory_tiers` (reads glyph-grid pages at 256/192/128 px):

    python -m eval.research.compression_study --model runs/memory_tiers --data data/demo --no-crops \
        --prompt $'<image>\nConvert the document to markdown.' --out docs/compression
"""

from __future__ import annotations

import argparse
import functools
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from eval.metrics import fox_page_metrics  # noqa: E402
from eval.pages import iter_pages  # noqa: E402
from eval.report_table import render_markdown_table  # noqa: E402
from ocr2.pipeline import OCRPipeline  # noqa: E402
from ocr2.weights import resolve_model_dir  # noqa: E402


def budgets_for(pipe: OCRPipeline) -> list[tuple[str, int, bool]]:
    """(label, global view size, crop mode) for every view size with a query table."""
    cfg = pipe.model.config
    sizes = sorted(int(s) for s in pipe.model.encoder.flow_queries) or [cfg.global_view_size]
    out = [(f"global {s}px", s, False) for s in sizes]
    out.append((f"global {cfg.global_view_size}px + {cfg.crop_size}px crops", cfg.global_view_size, True))
    return out


def mode_budgets(names: str, config) -> list[tuple[str, object]]:
    """(label, page -> PageViews) for v1's resolution modes (ocr2.modes.MODES), e.g. 'tiny,small,base'; each mode
    must have the model's flow-query tables (`config`)."""
    from ocr2.modes import require_query_tables, views_for

    modes = [require_query_tables(config, n.strip()) for n in names.split(",") if n.strip()]
    return [(f"{m.name} ({m.description.split(': ', 1)[-1]})" if m.description else m.name,
             functools.partial(views_for, mode=m)) for m in modes]


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
    p.add_argument("--no-crops", action="store_true", help="global-view budgets only")
    p.add_argument("--modes", default=None,
                   help="budgets from v1's resolution modes instead, e.g. tiny,small,base,large,gundam (the model "
                        "needs query tables for their view sizes: ocr2.modes.config_for_modes)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = OCRPipeline.from_pretrained(resolve_model_dir(args.model), device="cpu",
                                       max_new_tokens=args.max_new_tokens, batch_size=16, prompt=args.prompt)
    pages = list(iter_pages(args.data, args.split, args.pages))
    edges = [float(x) for x in args.bins.split(",")]
    base_cfg = pipe.model.config
    rows, lines = [], {}
    if args.modes:
        budgets = [(label, fn, None, None) for label, fn in mode_budgets(args.modes, pipe.model.config)]
    else:
        budgets = [(label, None, size, crop_mode) for label, size, crop_mode in budgets_for(pipe)
                   if not (args.no_crops and crop_mode)]
    for label, view_fn, size, crop_mode in budgets:
        pipe.view_fn = view_fn
        if view_fn is None:
            pipe.model.config.global_view_size, pipe.crop_mode, pipe.single_view = size, crop_mode, not crop_mode
        results = pipe.read_images([(pg.stem, pg.image) for pg in pages], progress=False)
        binned = defaultdict(list)
        for pg, r in zip(pages, results):
            vision = r.image_tokens
            ratio = len(pipe.tokenizer.encode(pg.markdown)) / vision
            b = next((i for i in range(len(edges) - 1) if edges[i] <= ratio < edges[i + 1]), len(edges) - 2)
            binned[b].append(fox_page_metrics(r.markdown, pg.markdown) | {"ratio": ratio, "vision": vision})
        for b, ms in sorted(binned.items()):
            rows.append({"budget": label, "vision_tokens": round(sum(m["vision"] for m in ms) / len(ms)),
                         "ratio_bin": f"{edges[b]:g}-{edges[b + 1]:g}x", "pages": len(ms),
                         "precision": sum(m["precision"] for m in ms) / len(ms),
                         "edit_dist": sum(m["edit_dist"] for m in ms) / len(ms)})
            lines.setdefault(label, []).append((sum(m["ratio"] for m in ms) / len(ms), rows[-1]["precision"]))
    pipe.model.config.global_view_size = base_cfg.global_view_size
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

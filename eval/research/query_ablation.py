"""`python -m eval.research.query_ablation --model RUN --data DATASET`: how much does the decoder depend on the
order of the flow outputs it is fed?

The encoder's kept outputs of every view (the flow queries; the visual tokens for masks that keep those) are
altered on their way to the decoder, and each page is read again (greedy, the checkpoint's reading recipe):

| ablation      | what the decoder gets, per view of n outputs                                          |
|---------------|----------------------------------------------------------------------------------------|
| `none`        | the outputs as they are (the baseline, through the same code path)                    |
| `swap_halves` | outputs n/2..n-1, then 0..n/2-1                                                        |
| `reverse`     | outputs n-1..0                                                                         |
| `shuffle`     | one fixed random permutation per view size (`--seed`), the same for every page         |
| `other_page`  | the outputs of the next page (the last page takes the first), drawn at this page's    |
|               | size so its views and crops line up one to one: right format, wrong content            |

A decoder that reads the flow as a 1-D sequence in order loses much under the permutations; one that treats the
outputs as an unordered set loses little; `other_page` is the floor (it can only guess). Figures: page NED
(normalised edit distance to the ground-truth markdown, as ocr2-eval), its change from `none`, and the share of
pages whose prediction changed at all. The alteration is a forward hook on `model.encoder`; nothing in the model
changes.

Python: `query_ablation(pipe, pages)` -> the result dict; `ablated(model, ablation)` is the hook as a context
manager; `write_outputs(result, out)`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import torch

from eval.metrics.edit_distance import normalized_edit_distance
from ocr2.modeling.model import OCR2Model
from ocr2.processing.image import batch_views

ABLATIONS = ("none", "swap_halves", "reverse", "shuffle", "other_page")


def permutation(ablation: str, n: int, seed: int = 0) -> torch.Tensor:
    """The index order of `n` outputs under a permuting ablation."""
    if ablation == "none":
        return torch.arange(n)
    if ablation == "swap_halves":
        return torch.cat([torch.arange(n // 2, n), torch.arange(n // 2)])
    if ablation == "reverse":
        return torch.arange(n - 1, -1, -1)
    if ablation == "shuffle":
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    raise ValueError(f"{ablation!r} is not a permutation; permutations: none, swap_halves, reverse, shuffle")


@contextmanager
def ablated(model: OCR2Model, ablation: str, seed: int = 0, donors: dict[int, torch.Tensor] | None = None):
    """Within the block, every encoder call's kept outputs (V, n, hidden) are altered: permuted along n, or (for
    `other_page`) replaced by `donors[view_size]`, the donor pages' outputs for the views of that size."""
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose from {ABLATIONS}")

    def hook(module, args, kwargs, output):
        view_size = kwargs.get("view_size", args[1] if len(args) > 1 else None)
        if ablation == "other_page":
            donor = (donors or {}).get(view_size)
            if donor is None or donor.shape != output.shape:
                raise ValueError(f"other_page: no donor outputs of shape {tuple(output.shape)} for {view_size}px "
                                 f"views (have {({k: tuple(v.shape) for k, v in (donors or {}).items()})})")
            return donor.to(output.dtype)
        return output[:, permutation(ablation, output.shape[1], seed).to(output.device)]

    handle = model.encoder.register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def donor_outputs(model: OCR2Model, recipe, images: list, donors: list) -> dict[int, torch.Tensor]:
    """The encoder outputs of `donors[i]` drawn at `images[i]`'s size, by view size, in the order the model
    encodes a batch of `images` (global views, then every page's crops)."""
    views = [recipe.views(d.convert("RGB").resize(img.size)) for img, d in zip(images, donors)]
    global_views, crops, _ = batch_views(views)
    param = next(model.parameters())
    out = {recipe.global_size: model.encoder(model.vision_tokenizer(global_views.to(param.device, param.dtype)),
                                             view_size=recipe.global_size)}
    if crops is not None and crops.shape[0]:
        if recipe.crop_size == recipe.global_size:
            raise ValueError("other_page needs crops and global views of different sizes")
        out[recipe.crop_size] = model.encoder(model.vision_tokenizer(crops.to(param.device, param.dtype)),
                                              view_size=recipe.crop_size)
    return out


def _read(pipe, chunk: list[tuple[str, object]]) -> list[str]:
    results = pipe.read_images(chunk, progress=False)
    bad = [r.error for r in results if r.error]
    if bad:
        raise RuntimeError(f"reading failed under the ablation: {bad[0]}")
    return [r.markdown for r in results]


def query_ablation(pipe, pages: Iterable, ablations: Iterable[str] = ABLATIONS, seed: int = 0,
                   progress: bool = True) -> dict:
    """pages: objects with `.stem`, `.image` (PIL) and `.markdown` (eval.pages.EvalPage); `pipe`: an OCRPipeline.
    Returns {"summary": {ablation: figures}, "pages": {stem: {ablation: ned}}, "protocol"}."""
    from tqdm.auto import tqdm

    ablations = list(ablations)
    if "none" not in ablations:
        ablations = ["none", *ablations]  # every delta is against it
    loaded = [(p.stem, p.image.convert("RGB"), p.markdown) for p in pages if p.markdown and p.markdown.strip()]
    if not loaded:
        raise ValueError("query_ablation needs pages with ground-truth markdown")
    if "other_page" in ablations and len(loaded) < 2:
        raise ValueError("other_page needs at least two pages")
    images = [img for _, img, _ in loaded]
    predictions: dict[str, list[str]] = {}
    bar = tqdm(total=len(ablations) * len(loaded), desc="query ablation", unit="page", disable=not progress)
    for ablation in ablations:
        preds: list[str] = []
        for start in range(0, len(loaded), pipe.batch_size):
            chunk = loaded[start:start + pipe.batch_size]
            donors = None
            if ablation == "other_page":
                donor_images = [images[(start + i + 1) % len(images)] for i in range(len(chunk))]
                donors = donor_outputs(pipe.model, pipe.recipe, [img for _, img, _ in chunk], donor_images)
            with ablated(pipe.model, ablation, seed, donors):
                preds += _read(pipe, [(stem, img) for stem, img, _ in chunk])
            bar.update(len(chunk))
        predictions[ablation] = preds
    bar.close()
    neds = {a: [normalized_edit_distance(p, gt) for p, (_, _, gt) in zip(predictions[a], loaded)] for a in ablations}
    base = statistics.fmean(neds["none"])
    summary = {}
    for a in ablations:
        mean = statistics.fmean(neds[a])
        changed = sum(p != q for p, q in zip(predictions[a], predictions["none"])) / len(loaded)
        summary[a] = {"page_ned": mean, "delta_ned": mean - base, "changed": changed}
    cfg = pipe.model.config.encoder
    return {"summary": summary,
            "pages": {stem: {a: neds[a][i] for a in ablations} for i, (stem, _, _) in enumerate(loaded)},
            "predictions": {a: dict(zip((s for s, _, _ in loaded), predictions[a])) for a in ablations},
            "protocol": {"pages": len(loaded), "views": pipe.recipe.name, "max_new_tokens": pipe.max_new_tokens,
                         "seed": seed, "mask": cfg.mask, "visual_positions": cfg.visual_positions,
                         "query_positions": cfg.query_positions}}


# ----------------------------------------------------------------------------------------- outputs


def markdown_table(result: dict) -> str:
    p = result["protocol"]
    lines = [f"Decoder-side query ablations: {p['pages']} pages, mask `{p['mask']}`, positions "
             f"`{p['visual_positions']}` / `{p['query_positions']}`, views {p['views']}, seed {p['seed']}. page NED: "
             "lower is better; delta: change from `none` (positive = worse).", "",
             "| ablation | page_ned | delta_ned | pages changed |", "|---|---|---|---|"]
    for a, f in result["summary"].items():
        lines.append(f"| {a} | {f['page_ned']:.4f} | {f['delta_ned']:+.4f} | {f['changed']:.2f} |")
    return "\n".join(lines) + "\n"


def figure(result: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["summary"])
    neds = [result["summary"][a]["page_ned"] for a in names]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2.5, 3.8), layout="constrained")
    bars = ax.bar(range(len(names)), neds, color=["#8c8c8c"] + ["#c44e52"] * (len(names) - 1))
    for bar, a in zip(bars, names):
        d = result["summary"][a]["delta_ned"]
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{bar.get_height():.3f}\n({d:+.3f})",
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(0, max(1.0, max(neds) * 1.2) if neds and not any(map(math.isnan, neds)) else 1.0)
    ax.set_ylabel("page NED (lower is better)", fontsize=8)
    p = result["protocol"]
    ax.set_title(f"Decoder fed altered flow outputs ({p['mask']}, {p['pages']} pages); "
                 "in brackets: change from none", fontsize=9)
    return fig


def write_outputs(result: dict, out: str | Path) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "query_ablation.json", "table": out / "query_ablation.md",
             "plot": out / "query_ablation.png"}
    paths["json"].write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    paths["table"].write_text(markdown_table(result))
    fig = figure(result)
    fig.savefig(paths["plot"], dpi=110)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    from eval.sources import open_source
    from ocr2.pipeline import OCRPipeline

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a from_pretrained directory or a training run")
    p.add_argument("--data", required=True, help="an ocr2 dataset or the official OmniDocBench layout")
    p.add_argument("--split", default=None)
    p.add_argument("--pages", type=int, default=32)
    p.add_argument("--ablations", default=",".join(ABLATIONS), help=f"comma-separated, from {', '.join(ABLATIONS)}")
    p.add_argument("--seed", type=int, default=0, help="the shuffle's permutation")
    p.add_argument("--views", default=None, help="view recipe (default: the checkpoint's reading recipe)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the checkpoint's reading recipe")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default="query_ablation", help="output directory")
    args = p.parse_args(argv)
    pipe = OCRPipeline.from_pretrained(args.model, device=args.device, views=args.views,
                                       max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    source = open_source(args.data, args.split, args.pages)
    result = query_ablation(pipe, source.pages, [a for a in args.ablations.split(",") if a], args.seed)
    result["protocol"]["data"] = source.describe()
    paths = write_outputs(result, args.out)
    print(markdown_table(result))
    print(f"query_ablation: {', '.join(str(v) for v in paths.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

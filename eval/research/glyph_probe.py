"""`python -m eval.research.glyph_probe --tokenizer DIR [--synth-config CONFIG] [--pages 48] [--out OUT]`: which
held-out rendering factor costs a pretrained vision tokenizer its glyphs?

`python -m train.tokenizer_pretrain` trains the vision tokenizer with a linear head that names the glyph in each
visual token's cell of a glyph-grid page (ocr2/data/glyph_labels.py), and scores it on the dataset's splits: the
in-distribution `validation` and, for configs/synth/demo_varied.json, `validation_unseen`, which changes several
things at once (a font family, glyph sizes, offsets). This command takes the split apart. It renders fresh pages
(page seeds `--seed-base` + i, i < `--pages`, the same seeds for every condition; the dataset's pages have 63-bit
hashed seeds, data_pipelines' `page_seed`, so none is reused) under each condition and reports the head's glyph
accuracy (share of glyph cells named right) and blank accuracy (share of empty cells called empty):

| condition             | pages drawn with                                                                     |
|-----------------------|--------------------------------------------------------------------------------------|
| `training ranges`     | the config as is, without the anchor pages (`grid_plain` 0, as every held-out split)  |
| `held-out ...`        | one factor of the config's extra split, the rest at the training ranges: each key of |
|                       | its overrides is a factor (`grid_shift` and `grid_jitter` together: `offsets`), and  |
|                       | list-valued faces and size ranges give one row per face / range                      |
| `all held out`        | the extra split's overrides together, as the split draws them                        |
| `training face: ...`  | one training face (`grid_fonts`) alone, the rest at the training ranges             |

The conditions come from the config (`--split`, default its only extra split), so another config's held-out split
works the same way; a config without an extra split gives the training-range and per-face rows only. The
accuracy's standard error is over pages (cells of one page share its face, size and shift, so they are not
independent draws).

Out, in `--out`: `glyph_probe.md` (the table, also printed), `glyph_probe.json` (rows, each with what its pages
were drawn with: faces, glyph sizes, offsets; and the protocol: tokenizer dir, config, split, view, pages, seeds),
`glyph_probe.png` (glyph accuracy per condition, horizontal bars).

Python: `conditions(config, split)` -> the conditions; `condition_pages(condition, pages, seed_base)` -> the pages;
`glyph_probe(tokenizer, head, recipe, conditions, ...)` -> the result dict; `load_probe(dir)`; `write_outputs`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from data_pipelines import PageGenerator, SynthConfig
from ocr2.data.examples import open_image
from ocr2.data.glyph_labels import NUM_CLASSES, cell_hits, glyph_labels
from ocr2.data.skips import BadSample, SkipCounter
from ocr2.modeling.model import OCR2Model
from ocr2.processing.views import ViewRecipe, get_recipe

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "configs" / "synth" / "demo_varied.json"
# Where train/tokenizer_pretrain.py writes the head (its HEAD_FILE; eval does not import train).
HEAD_FILE = "glyph_head/head.safetensors"
SEED_BASE = 10**6
# Extra-split keys probed together as one factor; every other key is a factor of its own.
FACTOR_GROUPS = {"grid_shift": "offsets", "grid_jitter": "offsets"}
KINDS = ("training", "held_out_factor", "all_held_out", "training_face")


@dataclass
class Condition:
    name: str
    kind: str  # one of KINDS
    changes: dict[str, Any]  # SynthConfig fields replaced, relative to the config's training ranges
    config: SynthConfig = field(repr=False)
    factor: str | None = None


def _variant(config: SynthConfig, changes: dict[str, Any]) -> SynthConfig:
    """The config with `changes`, drawn without anchor pages and without extra splits."""
    d = {k: v for k, v in config.to_dict().items() if k != "extra_splits"}
    return SynthConfig.from_dict({**d, "grid_plain": 0.0, **changes})


def _size_ranges(value) -> list[list[float]]:
    """[lo, hi] or a list of [lo, hi] -> a list of [lo, hi]."""
    value = list(value)
    return [list(value)] if value and not isinstance(value[0], (list, tuple)) else [list(r) for r in value]


def _short(key: str) -> str:
    return key.removeprefix("grid_")


def _describe(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_describe, value)) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def held_out_factors(overrides: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """An extra split's overrides -> [(factor, row name, changes)]: one row per face of `grid_fonts`, per range of
    `grid_glyph_size`, per FACTOR_GROUPS group, and per other key."""
    rows: list[tuple[str, str, dict[str, Any]]] = []
    groups: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if key == "grid_plain":
            continue  # a training device, off on every probed page
        if key == "grid_fonts" and value:
            rows += [(key, f"held-out face: {face}", {key: [face]}) for face in value]
        elif key == "grid_glyph_size":
            rows += [(key, f"held-out size: {lo:g}-{hi:g}", {key: [lo, hi]}) for lo, hi in _size_ranges(value)]
        else:
            groups.setdefault(FACTOR_GROUPS.get(key, key), {})[key] = value
    for factor, changes in groups.items():
        what = ", ".join(_describe(v) if k == factor else f"{_short(k)} {_describe(v)}" for k, v in changes.items())
        rows.append((factor, f"held-out {_short(factor)}: {what}", changes))
    return rows


def default_split(config: SynthConfig, path: str | Path = "the config") -> str | None:
    """The config's extra split (None when it has none; a ValueError when it has several)."""
    splits = list(config.extra_splits)
    if len(splits) > 1:
        raise ValueError(f"{path}: {len(splits)} extra splits ({', '.join(splits)}); choose one with --split")
    return splits[0] if splits else None


def conditions(config: SynthConfig, split: str | None = None, path: str | Path = "the config") -> list[Condition]:
    """The probe's conditions (module doc), in table order. split: an extra split of `config`, or None for the
    training-range and per-training-face rows only."""
    out = [Condition("training ranges", "training", {}, _variant(config, {}))]
    if split is not None:
        if split not in config.extra_splits:
            raise ValueError(f"{path}: no extra split {split!r} "
                             f"(extra_splits: {sorted(config.extra_splits) or 'none'})")
        overrides = config.extra_splits[split]
        for factor, name, changes in held_out_factors(overrides):
            out.append(Condition(name, "held_out_factor", changes, _variant(config, changes), factor))
        out.append(Condition("all held out", "all_held_out", dict(overrides), config.for_split(split)))
    faces = config.grid_fonts or ()
    if len(faces) > 1:
        out += [Condition(f"training face: {face}", "training_face", {"grid_fonts": [face]},
                          _variant(config, {"grid_fonts": [face]}), "grid_fonts") for face in faces]
    return out


def page_seeds(pages: int, seed_base: int = SEED_BASE) -> list[int]:
    return [seed_base + i for i in range(pages)]


def condition_pages(condition: Condition, pages: int, seed_base: int = SEED_BASE) -> Iterator:
    """The condition's pages (data_pipelines' SyntheticPage), seeds `seed_base` + i."""
    generator = PageGenerator(condition.config)
    for seed in page_seeds(pages, seed_base):
        yield generator.page(seed, page_id=f"probe-{seed}")


# ----------------------------------------------------------------------------------------- scoring


def load_probe(directory: str | Path, device: str | torch.device = "cpu", views: str | None = None
               ) -> tuple[torch.nn.Module, torch.nn.Linear, ViewRecipe, dict]:
    """(the vision tokenizer, the glyph head, the view recipe, tokenizer_pretrain.json or {}) of a
    `tokenizer_pretrain` output. The recipe: `views`, else the one it was pretrained with (the record's `view`),
    else the model's reading recipe."""
    from safetensors.torch import load_file

    directory = Path(directory)
    head_path = directory / HEAD_FILE
    if not head_path.is_file():
        raise FileNotFoundError(f"{head_path}: no glyph head in {directory} (a python -m train.tokenizer_pretrain "
                                f"--out DIR output has one)")
    model = OCR2Model.from_pretrained(directory, device=device)
    hidden = model.config.encoder.hidden_size
    state = load_file(str(head_path))
    want = {"weight": (NUM_CLASSES, hidden), "bias": (NUM_CLASSES,)}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != want:
        raise ValueError(f"{head_path}: not a glyph head for this model: tensors {got}, expected {want} "
                         f"(nn.Linear({hidden}, {NUM_CLASSES}))")
    head = torch.nn.Linear(hidden, NUM_CLASSES)
    head.load_state_dict(state)
    record_path = directory / "tokenizer_pretrain.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    recipe = get_recipe(views or record.get("view") or model.reading.views, model.config)
    return model.vision_tokenizer.eval(), head.to(device).eval(), recipe, record


def _stats(hits: list[int], cells: list[int]) -> tuple[float, float]:
    """Accuracy over cells and its standard error with pages as clusters (nan when there are no cells)."""
    n = sum(cells)
    if not n:
        return math.nan, math.nan
    p = sum(hits) / n
    k = len([c for c in cells if c])
    if k < 2:
        return p, math.nan
    spread = sum((h - p * c) ** 2 for h, c in zip(hits, cells) if c)
    return p, math.sqrt(k / (k - 1) * spread) / n


def _drawn(renderings: list[dict]) -> dict:
    sizes = [r["size"] for r in renderings if "size" in r]
    offsets = [max(abs(dx), abs(dy)) for r in renderings for dx, dy in r.get("offsets", ())]
    shifts = [max(map(abs, r["shift"])) for r in renderings if "shift" in r]
    return {"faces": sorted({str(r.get("face")) for r in renderings}),
            "size_px": [min(sizes), max(sizes)] if sizes else None,
            "max_shift_px": max(shifts, default=None), "max_offset_px": max(offsets, default=None),
            "plain_pages": sum(bool(r.get("plain")) for r in renderings)}


@torch.no_grad()
def score_condition(tokenizer, head, recipe: ViewRecipe, side: int, condition: Condition, pages: int,
                    seed_base: int = SEED_BASE, batch_size: int = 16, bar=None) -> dict:
    """One condition's row: glyph and blank accuracy over its pages, and what the pages were drawn with."""
    param = next(tokenizer.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else ("cpu", torch.float32)
    skips = SkipCounter()
    glyph_hits: list[int] = []
    glyph_cells: list[int] = []
    blank_hits = blank_cells = 0
    renderings: list[dict] = []
    batch: list[tuple[torch.Tensor, torch.Tensor]] = []

    def flush():
        nonlocal blank_hits, blank_cells
        if not batch:
            return
        pixels = torch.stack([b[0] for b in batch]).to(device, dtype)
        labels = torch.stack([b[1] for b in batch]).to(device)
        counts = cell_hits(head(tokenizer(pixels)).argmax(-1), labels)
        glyph_hits.extend(counts["glyph_hits"].tolist())
        glyph_cells.extend(counts["glyph_cells"].tolist())
        blank_hits += int(counts["empty_hits"].sum())
        blank_cells += int(counts["empty_cells"].sum())
        batch.clear()

    for page in condition_pages(condition, pages, seed_base):
        renderings.append(page.rendering)
        try:
            image = open_image(page.image, page.id)  # as tokenizer_pretrain decodes a dataset row: RGB
            labels = glyph_labels(page.blocks, image.size, recipe, side, page.id)
        except BadSample as e:
            skips.add(e.reason, page.id, e.detail)
        else:
            batch.append((recipe.views(image).global_view, labels))
            if len(batch) >= batch_size:
                flush()
        if bar is not None:
            bar.update(1)
    flush()
    glyph, se = _stats(glyph_hits, glyph_cells)
    return {"condition": condition.name, "kind": condition.kind, "factor": condition.factor,
            "changes": condition.changes, "pages": len(glyph_cells), "glyph_cells": sum(glyph_cells),
            "glyph_accuracy": glyph, "glyph_se": se, "blank_cells": blank_cells,
            "blank_accuracy": blank_hits / blank_cells if blank_cells else math.nan,
            "skipped": skips.counts(), "drawn": _drawn(renderings)}


def glyph_probe(tokenizer, head, recipe: ViewRecipe, conds: list[Condition], pages: int = 48,
                seed_base: int = SEED_BASE, batch_size: int = 16, progress: bool = True) -> dict:
    """Every condition's row (score_condition), the change of glyph accuracy from `training ranges` added;
    {"rows", "protocol"}. tokenizer: (B, 3, s, s) -> (B, side², hidden); head: hidden -> NUM_CLASSES logits."""
    from tqdm.auto import tqdm

    if pages < 1:
        raise ValueError(f"--pages must be >= 1, got {pages}")
    side = round(tokenizer.num_tokens(recipe.global_size, recipe.global_size) ** 0.5)
    start = time.perf_counter()
    rows = []
    bar = tqdm(total=len(conds) * pages, desc="glyph probe", unit="page", disable=not progress)
    was_training = tokenizer.training
    tokenizer.eval()
    try:
        for cond in conds:
            bar.set_postfix_str(cond.name, refresh=False)
            rows.append(score_condition(tokenizer, head, recipe, side, cond, pages, seed_base, batch_size, bar))
    finally:
        tokenizer.train(was_training)
        bar.close()
    base = next((r["glyph_accuracy"] for r in rows if r["kind"] == "training"), math.nan)
    for r in rows:
        r["delta_glyph"] = r["glyph_accuracy"] - base
    seeds = page_seeds(pages, seed_base)
    return {"rows": rows,
            "protocol": {"pages_per_condition": pages, "seeds": [seeds[0], seeds[-1]], "seed_base": seed_base,
                         "view": recipe.name, "tokens_per_side": side, "conditions": len(conds),
                         "seconds": round(time.perf_counter() - start, 1)}}


# ----------------------------------------------------------------------------------------- outputs


def _fmt(x: float, spec: str = ".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def markdown_table(result: dict) -> str:
    p = result["protocol"]
    split = f", held-out split `{p['split']}`" if p.get("split") else ", no held-out split"
    lines = [f"Glyph probe of `{p.get('tokenizer', '?')}` on `{p.get('config', '?')}`{split}: "
             f"{p['pages_per_condition']} fresh pages per condition (seeds {p['seeds'][0]}-{p['seeds'][1]}, the same "
             "for every condition), "
             f"view {p['view']} ({p['tokens_per_side']}x{p['tokens_per_side']} tokens). glyph: share of glyph cells "
             "named right (± its standard error over pages); blank: share of empty cells called empty; delta: "
             "glyph accuracy minus that of `training ranges`.", "",
             "| condition | pages | glyph cells | glyph accuracy | ± se | delta | blank accuracy |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['condition']} | {r['pages']} | {r['glyph_cells']} | {_fmt(r['glyph_accuracy'])} | "
                     f"{_fmt(r['glyph_se'])} | {_fmt(r['delta_glyph'], '+.3f')} | {_fmt(r['blank_accuracy'])} |")
    return "\n".join(lines) + "\n"


COLOURS = {"training": "#4c72b0", "training_face": "#8fa8d0", "held_out_factor": "#dd8452", "all_held_out": "#c44e52"}


def figure(result: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = result["rows"]
    acc = [0.0 if math.isnan(r["glyph_accuracy"]) else r["glyph_accuracy"] for r in rows]
    err = [0.0 if math.isnan(r["glyph_se"]) else r["glyph_se"] for r in rows]
    fig, ax = plt.subplots(figsize=(8.5, 0.32 * len(rows) + 1.6), layout="constrained")
    y = range(len(rows))
    ax.barh(y, acc, xerr=err, color=[COLOURS[r["kind"]] for r in rows], error_kw={"lw": 0.8, "ecolor": "#333"})
    for i, (a, r) in enumerate(zip(acc, rows)):
        inside = a > 0.2
        ax.text(a - 0.01 if inside else a + 0.01, i, _fmt(r["glyph_accuracy"], ".2f"), va="center",
                ha="right" if inside else "left", fontsize=7, color="white" if inside else "black")
    base = next((r["glyph_accuracy"] for r in rows if r["kind"] == "training"), math.nan)
    if not math.isnan(base):
        ax.axvline(base, color="#4c72b0", ls="--", lw=0.8)
    ax.set_yticks(list(y), [r["condition"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("glyph accuracy (share of glyph cells named right)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    p = result["protocol"]
    ax.set_title(f"Glyph head on the pretrained tokenizer, {p['pages_per_condition']} pages per condition", fontsize=9)
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    names = {"training": "training ranges", "training_face": "one training face", "held_out_factor":
             "one held-out factor", "all_held_out": "all held out"}
    fig.legend(handles=[Patch(color=COLOURS[k], label=names[k]) for k in kinds], fontsize=7,
               loc="outside lower center", ncols=len(kinds), frameon=False)
    return fig


def write_outputs(result: dict, out: str | Path) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "glyph_probe.json", "table": out / "glyph_probe.md", "plot": out / "glyph_probe.png"}
    paths["json"].write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    paths["table"].write_text(markdown_table(result))
    fig = figure(result)
    fig.savefig(paths["plot"], dpi=110)
    plt.close(fig)
    return paths


def _shown(path: str | Path) -> str:
    """A path inside the repository relative to its root (the default config's), any other as given."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokenizer", required=True, help="a python -m train.tokenizer_pretrain output directory")
    p.add_argument("--synth-config", default=str(DEFAULT_CONFIG), help="the SynthConfig JSON the pages are drawn "
                   "from (default: configs/synth/demo_varied.json)")
    p.add_argument("--split", default=None, help="the extra split whose overrides are the held-out factors "
                   "(default: the config's only one)")
    p.add_argument("--pages", type=int, default=48, help="pages per condition")
    p.add_argument("--seed-base", type=int, default=SEED_BASE, help="page seeds are seed_base + i")
    p.add_argument("--views", default=None, help="view recipe (default: the one the tokenizer was pretrained "
                   "with, from tokenizer_pretrain.json; else the model's reading recipe)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="glyph_probe", help="output directory")
    args = p.parse_args(argv)

    config = SynthConfig.load(args.synth_config)
    split = args.split or default_split(config, args.synth_config)
    if split is None:
        print(f"note: {args.synth_config} has no extra_splits: only the training-range and per-face rows",
              flush=True)
    conds = conditions(config, split, args.synth_config)
    tokenizer, head, recipe, record = load_probe(args.tokenizer, args.device, args.views)
    result = glyph_probe(tokenizer, head, recipe, conds, args.pages, args.seed_base, args.batch_size)
    result["protocol"].update({"tokenizer": str(args.tokenizer), "config": _shown(args.synth_config), "split": split,
                               "pretraining_steps": record.get("settings", {}).get("steps")})
    paths = write_outputs(result, args.out)
    print(markdown_table(result))
    print(f"glyph_probe: {', '.join(str(v) for v in paths.values())} ({result['protocol']['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

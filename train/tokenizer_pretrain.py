"""`python -m train.tokenizer_pretrain --out DIR [--steps N] [OVERRIDES...]`: pretrain the vision tokenizer to
recognise the glyph under each visual token, as a stand-in for the pretrained tokenizer the paper starts from.

DeepSeek-OCR 2 does not train its vision tokenizer from scratch: SAM-B and the 16x compressor come pretrained
(from DeepSeek-OCR), and the encoder and decoder learn to read on top of features that already tell glyphs apart.
A toy model on a CPU has no such tokenizer. Frozen at its random initialisation, the micro tokenizer's features do
not separate 26 letters drawn in many faces, sizes and offsets within the steps a CPU trains (docs/demo.md: the
reader plateaus at "layout known, no letter read"), and trained from scratch under the reader's loss it collapses
to an image-independent constant. This command gives it the missing pretraining: on glyph-grid pages (one glyph
per visual-token cell, ocr2/data/glyph_labels.py) a linear head on each visual token is trained to name the glyph in
its cell (or "none"), through the tokenizer, with cross-entropy. The reader is then trained with the tokenizer
loaded and frozen (`init_from=DIR init_modules=[vision_tokenizer]`), as in the paper's stage 2.

The model config, data path, view and seed are the run's own: OVERRIDES are `ocr2-train` overrides (e.g.
`experiment=demo data.path=data/demo_varied`), composed from the same configs/ tree, so the tokenizer written is
exactly the one `ocr2-train` with the same overrides builds (same seed: the encoder and decoder of the saved model
are the fresh ones; only `vision_tokenizer` is meant to be taken from it). Only the `train` split is trained on;
every other split of the dataset (e.g. `validation`, `validation_unseen`) is scored by glyph accuracy every
`--eval-every` steps and at the end, and the model is saved at each scoring, so a stopped run keeps its last.

Out, in DIR: the model (`from_pretrained` layout), the glyph head (`glyph_head/head.safetensors`, read by
eval/research/glyph_probe.py), `tokenizer_pretrain.json` (settings, the loss curve, glyph accuracy per split and
step, skipped pages by reason).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from safetensors.torch import save_file

from configs import CONFIG_DIR
from ocr2 import OCR2Model
from ocr2.data.examples import open_image
from ocr2.data.glyph_labels import NUM_CLASSES, cell_hits, glyph_labels
from ocr2.data.schema import sample_blocks
from ocr2.data.skips import BadSample, SkipCounter
from ocr2.data.stream import find_parquet_files
from ocr2.processing.views import get_recipe
from train.builders import build_reading, build_run_model_config, stage_views
from train.schedule import cosine_lr

COLUMNS = ["id", "image", "blocks"]
# The linear glyph classifier on each visual token (for probes; not part of the model). In a subfolder: the model
# loader reads every *.safetensors file beside config.json as weights.
HEAD_FILE = "glyph_head/head.safetensors"


def load_rows(data: Path, split: str) -> list[dict]:
    """Every row of a split, image still encoded (PNG bytes are ~20x smaller than the decoded view)."""
    rows = []
    for path in find_parquet_files(data, split):
        rows.extend(pq.read_table(path, columns=COLUMNS).to_pylist())
    return rows


def split_names(data: Path) -> list[str]:
    """The dataset's splits (ocr2_dataset.json, written by ocr2-data), train first."""
    info = json.loads((data / "ocr2_dataset.json").read_text())
    return sorted(info.get("splits", {"train": 0}), key=lambda s: (s != "train", s))


class GlyphBatches:
    """Pages -> (global views, per-token labels), skipping and counting pages that are not glyph-grid pages."""

    def __init__(self, recipe, side: int, skips: SkipCounter):
        self.recipe, self.side, self.skips = recipe, side, skips

    def example(self, row: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
        try:
            blocks = sample_blocks(row)
            image = open_image(row["image"], row["id"])
            labels = glyph_labels(blocks, image.size, self.recipe, self.side, row["id"])
        except BadSample as e:
            self.skips.add(e.reason, row["id"], e.detail)
            return None
        return self.recipe.views(image).global_view, labels

    def batch(self, rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor] | None:
        examples = [e for e in map(self.example, rows) if e is not None]
        if not examples:
            return None
        return torch.stack([e[0] for e in examples]), torch.stack([e[1] for e in examples])


def glyph_accuracy(tokenizer, head, batches: GlyphBatches, rows: list[dict], batch_size: int = 32) -> dict:
    """Share of glyph cells named right, and of empty cells called empty."""
    hit = glyphs = empty_hit = empty = 0
    was_training = tokenizer.training
    tokenizer.eval()
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            got = batches.batch(rows[i:i + batch_size])
            if got is None:
                continue
            pixels, labels = got
            counts = {k: int(v.sum()) for k, v in cell_hits(head(tokenizer(pixels)).argmax(-1), labels).items()}
            hit, glyphs = hit + counts["glyph_hits"], glyphs + counts["glyph_cells"]
            empty_hit, empty = empty_hit + counts["empty_hits"], empty + counts["empty_cells"]
    tokenizer.train(was_training)
    return {"glyph_accuracy": hit / glyphs if glyphs else float("nan"),
            "empty_accuracy": empty_hit / empty if empty else float("nan"), "glyph_cells": glyphs}


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="where the model and tokenizer_pretrain.json go")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-pages", type=int, default=64, help="pages scored per held-out split")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("overrides", nargs="*", help="ocr2-train overrides: experiment=demo data.path=...")
    args = p.parse_args(argv)
    cfg = _compose(args.overrides)
    out, data = Path(args.out), Path(cfg.data.path)
    if cfg.get("init_from"):  # e.g. an experiment whose reader starts from this very output
        print(f"note: init_from={cfg.init_from} is not read here; the tokenizer starts from the seed's fresh build",
              flush=True)

    torch.manual_seed(int(cfg.seed))
    model_cfg = build_run_model_config(cfg)
    model = OCR2Model(model_cfg)  # the same fresh model ocr2-train builds from these overrides and seed
    tokenizer = model.vision_tokenizer
    recipe = get_recipe(stage_views(cfg)[0], model_cfg)
    side = round(tokenizer.num_tokens(recipe.global_size, recipe.global_size) ** 0.5)
    head = torch.nn.Linear(model_cfg.encoder.hidden_size, NUM_CLASSES)
    params = [*tokenizer.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)

    skips = SkipCounter()
    batches = GlyphBatches(recipe, side, skips)
    splits = split_names(data)
    train_rows = load_rows(data, "train")
    if not train_rows:
        raise ValueError(f"{data}: no train split to pretrain the vision tokenizer on")
    held_out = {s: load_rows(data, s)[:args.eval_pages] for s in splits if s != "train"}
    rng = random.Random(int(cfg.seed))
    order: list[int] = []
    record = {"settings": {k: v for k, v in vars(args).items() if k != "overrides"}, "overrides": args.overrides,
              "view": recipe.name, "tokens_per_side": side, "loss": [], "accuracy": []}
    reading = build_reading(cfg, model_cfg)

    def score_and_save(step: int) -> None:
        row = {"step": step, **{s: glyph_accuracy(tokenizer, head, batches, rows) for s, rows in held_out.items()}}
        record["accuracy"].append(row)
        print("  glyph accuracy at step {}: {}".format(step, ", ".join(
            f"{s} {row[s]['glyph_accuracy']:.3f}" for s in held_out)), flush=True)
        model.save_pretrained(out, reading=reading)
        (out / HEAD_FILE).parent.mkdir(exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(out / HEAD_FILE))
        record["skipped"] = skips.counts()
        (out / "tokenizer_pretrain.json").write_text(json.dumps(record, indent=1) + "\n")

    print(f"pretraining the vision tokenizer on {len(train_rows)} pages of {data} ({recipe.name}, {side}x{side} "
          f"tokens), {args.steps} steps of {args.batch_size}", flush=True)
    start = time.perf_counter()
    tokenizer.train()
    for step in range(1, args.steps + 1):
        rows = []
        while len(rows) < args.batch_size:
            if not order:
                order = list(range(len(train_rows)))
                rng.shuffle(order)
            rows.append(train_rows[order.pop()])
        got = batches.batch(rows)
        if got is None:
            continue
        pixels, labels = got
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step - 1, args.steps, args.lr, args.min_lr, args.warmup_steps)
        loss = F.cross_entropy(head(tokenizer(pixels)).flatten(0, 1), labels.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        record["loss"].append([step, round(loss.item(), 5)])
        if step % args.log_every == 0 or step == args.steps:
            elapsed = time.perf_counter() - start
            rate = step / elapsed
            print(f"step {step}/{args.steps} loss {loss.item():.4f} {rate:.2f} steps/s "
                  f"ETA {(args.steps - step) / rate / 60:.1f} min", flush=True)
        if step % args.eval_every == 0 and step != args.steps:
            score_and_save(step)
    record["seconds"] = round(time.perf_counter() - start, 1)
    score_and_save(args.steps)
    print(f"{skips.report()}; saved {out} ({record['seconds']:.0f} s)", flush=True)
    return record


if __name__ == "__main__":
    main(sys.argv[1:])

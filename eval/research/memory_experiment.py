"""Optical context memory experiment: context tokens vs turns, and read-back quality per age tier.

    python -m eval.research.memory_experiment                       # (a) only: table + runs/memory/tokens_vs_turns.png
    python -m eval.research.memory_experiment --checkpoint RUN_OR_MODEL_DIR --pages 2   # (a) and (b)
    ocr2-train experiment=memory_tiers                     # toy (b): a micro model that reads at 3 view sizes
    python -m eval.research.memory_experiment --checkpoint runs/memory_tiers --glyph-grid --pages 32 \
        --prompt plain_markdown

(a) A synthetic conversation (deterministic word salad, turns of --words-min..--words-max words, alternating
    User/Assistant) grows turn by turn; for each length the context cost is printed and plotted for: all turns
    as text tokens; optical memory under the age schedule (eval.research.memory.DEFAULT_SCHEDULE unless --schedule);
    and optical memory capped at --budget tokens. Counts use the checkpoint's tokenizer when one is given, else
    --tokenizer DIR (e.g. the official tokenizer files), else ocr2's byte tokenizer, which spends one token per
    byte: a BPE tokenizer spends ~4x fewer tokens on the same text, so text costs and compression ratios are
    ~4x smaller with it (the image costs do not change).
(b) With --checkpoint: --pages pages of fresh synthetic turns are rendered as the memory renders them and read
    back by the model ("<image>\\nFree OCR.") at every image tier of the schedule; NED (whitespace-normalised
    normalised edit distance, eval.metrics) per tier. Each tier is a view recipe (ocr2/processing/views.py; the
    schedule's tiny .. gundam are v1's resolution modes) and a page costs `recipe.image_tokens(...)` <image>
    positions. Text tiers are verbatim (NED 0). Query tables that the checkpoint lacks are added by interpolation
    (ocr2.query_tables.add_query_tables) and their tiers are marked UNTRAINED: their numbers say nothing until the
    model is trained at those sizes.
    With --glyph-grid (toy scale, CPU): turns of random capitals are rendered by eval.research.memory.GlyphGridRenderer
    (one glyph per 64 px cell of a 256² page, the demo's pages) and read at 256/192/128 px views (16/9/4 visual
    tokens: Base and Tiny at 1/4 scale and one size between), by a model trained at those sizes
    (experiment=memory_tiers). docs/memory.md has what we measured.
Outputs in --out (default runs/memory/): tokens_vs_turns.{png,csv}, results.json, and with (b) read_back.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

import torch

from eval.research.memory import (
    DEFAULT_SCHEDULE, GlyphGridRenderer, MemorySchedule, PageRenderer, Turn, build_memory, turn_text,
)
from ocr2.processing.views import ViewRecipe, get_recipe

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no will what can more out up into do time "
    "only about other could than some new very after years first page model memory token image text context "
    "decoder encoder reads older turns fade while recent ones stay sharp because resolution shrinks with age"
).split()


def synthetic_turns(n: int, words_min: int = 30, words_max: int = 120, seed: int = 0) -> list[Turn]:
    """n turns; the first k turns are the same for every n >= k (the conversation grows at the end)."""
    rng = random.Random(seed)
    turns = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(words_min, words_max))]
        text = " ".join(words).capitalize() + "."
        turns.append(Turn(text, role="User" if i % 2 == 0 else "Assistant"))
    return turns


def _tier_summary(memory) -> str:
    short = {"text": "text", "gundam": "G", "large": "L", "base": "B", "small": "S", "tiny": "T", "ocr2": "O"}
    parts = []
    for tier, d in memory.tier_counts().items():
        parts.append(f"{short.get(tier, tier)}{d['segments']}")
    return " ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.research.memory_experiment", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/memory", help="output directory (default: runs/memory)")
    p.add_argument("--turns", default="1,2,4,8,16,32,64,128,256,512",
                   help="comma-separated conversation lengths (turns)")
    p.add_argument("--words-min", type=int, default=30)
    p.add_argument("--words-max", type=int, default=120)
    p.add_argument("--budget", type=int, default=4096, help="token budget of the capped curve (0: none)")
    p.add_argument("--schedule", default=None, help="e.g. '0:text,4:gundam,8:large,16:base,32:small,64:tiny'")
    p.add_argument("--drop-age", type=int, default=None, help="drop turns at least this old")
    p.add_argument("--policy", default="degrade_first", choices=["degrade_first", "oldest_first"])
    p.add_argument("--page-size", type=int, default=1280)
    p.add_argument("--font-size", type=int, default=22)
    p.add_argument("--tokenizer", default=None, help="tokenizer directory for the counts (default: byte tokenizer)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, help="trained ocr2 model dir or run dir: enables part (b)")
    p.add_argument("--pages", type=int, default=2, help="(b) pages read back per tier")
    p.add_argument("--max-new-tokens", type=int, default=2048, help="(b) generation cap per page")
    p.add_argument("--device", default=None, help="(b) cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--prompt", default="free_ocr",
                   help="(b) prompt: a name (free_ocr, markdown, plain_markdown) or a literal prompt with <image> "
                        "(the one the checkpoint trained with)")
    p.add_argument("--glyph-grid", action="store_true",
                   help="(b) toy scale: turns of random capitals on 256² glyph-grid pages, read at 256/192/128 px "
                        "views (a checkpoint of experiment=memory_tiers; use --prompt with its training prompt)")
    return p


# ------------------------------------------------------------------------------------------------ (a)
def tokens_vs_turns(args, tokenizer, schedule, renderer) -> list[dict]:
    counts = sorted({int(x) for x in args.turns.split(",") if x.strip()})
    history = synthetic_turns(max(counts), args.words_min, args.words_max, args.seed)
    rows = []
    for n in counts:
        turns = history[:n]
        free = build_memory(turns, tokenizer, schedule=schedule, renderer=renderer, render=False, policy=args.policy)
        row = {"turns": n, "text_tokens": free.text_only_tokens, "optical_tokens": free.num_tokens,
               "compression": round(free.compression, 2), "tiers": _tier_summary(free)}
        if args.budget:
            capped = build_memory(turns, tokenizer, budget=args.budget, schedule=schedule, renderer=renderer,
                                  render=False, policy=args.policy)
            row.update(budget_tokens=capped.num_tokens, budget_tiers=_tier_summary(capped),
                       budget_dropped_turns=len(capped.dropped_turns))
        rows.append(row)
    return rows


def print_table(rows: list[dict], budget: int) -> None:
    head = f"{'turns':>6} {'text tokens':>12} {'optical':>9} {'ratio':>7}  {'segments (optical)':<28}"
    if budget:
        head += f" {'budget ' + str(budget):>12} {'dropped':>8}  segments (budget)"
    print(head)
    for r in rows:
        line = (f"{r['turns']:>6} {r['text_tokens']:>12} {r['optical_tokens']:>9} {r['compression']:>6.1f}x"
                f"  {r['tiers']:<28}")
        if budget:
            line += f" {r['budget_tokens']:>12} {r['budget_dropped_turns']:>8}  {r['budget_tiers']}"
        print(line)
    print("segments: textN = N text turns; G/L/B/S/T N = N pages at Gundam/Large/Base/Small/Tiny")


def plot(rows: list[dict], budget: int, path: Path, tokenizer_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["turns"] for r in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.plot(x, [r["text_tokens"] for r in rows], "o-", label="all turns as text")
    ax.plot(x, [r["optical_tokens"] for r in rows], "s-", label="optical memory (schedule)")
    if budget:
        ax.plot(x, [r["budget_tokens"] for r in rows], "^-", label=f"optical memory, budget {budget}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("turns in the conversation")
    ax.set_ylabel(f"context tokens ({tokenizer_name})")
    ax.set_title("Context cost vs conversation length")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax2.plot(x, [r["compression"] for r in rows], "s-", color="C1")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("turns in the conversation")
    ax2.set_ylabel("text tokens / optical tokens")
    ax2.set_title("Compression of the optical memory")
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ (b)
# Toy tiers for models trained with experiment=memory_tiers: single views of a 256² glyph-grid page at three sizes
# (v1's Base and Tiny at 1/4 scale, and one size between), each a view the model was trained on (the pixels of
# `single:256` / `single:192` / `single:128`: one contain-resized view, grey pad).
GLYPH_TIERS = (
    ViewRecipe("256px", 256, description="Base at 1/4 scale: 16 tokens, one glyph per token"),
    ViewRecipe("192px", 192, description="9 tokens, ~1.8 glyphs per token"),
    ViewRecipe("128px", 128, description="Tiny at 1/4 scale: 4 tokens, 4 glyphs per token"),
)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def glyph_turns(n: int, seed: int = 0) -> list[str]:
    """n turns of 4 or 8 random capitals: whole 4-glyph lines on a 256² glyph-grid page, as in the demo's pages."""
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.choice((4, 8)))) for _ in range(n)]


def read_back(args, tiers: list[str | ViewRecipe], renderer: PageRenderer, texts: list[str], prompt: str) -> dict:
    """Render `texts` (turns) as the memory lays out a tier block, show the first --pages pages to the model at
    every tier's view recipe (names resolved against the checkpoint's config) and score what it reads back
    (whitespace-normalised NED)."""
    from eval.metrics import normalized_edit_distance
    from ocr2 import OCR2Model
    from ocr2.generation import NoRepeatNGram
    from ocr2.processing.text import encode_prompt, load_tokenizer
    from ocr2.query_tables import add_query_tables
    from ocr2.weights import resolve_model_dir

    model_dir = resolve_model_dir(args.checkpoint)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    model = OCR2Model.from_pretrained(model_dir, dtype=dtype, device=device)
    tok = load_tokenizer(model_dir)
    tiers = [get_recipe(t, model.config) for t in tiers]
    needed = {s for recipe in tiers for s in recipe.view_sizes}
    untrained_sizes = set(add_query_tables(model, needed))
    model = model.to(device=device, dtype=dtype).eval()
    if untrained_sizes:
        print(f"WARNING: {model_dir} has no flow-query tables for {sorted(untrained_sizes)} px views; they were "
              "interpolated from trained tables (UNTRAINED): those tiers' NED is not meaningful.")
    layouts = renderer.layout(texts)[: args.pages]
    whitelist = tuple(tok.token_id(t) for t in ("<td>", "</td>"))
    no_repeat = NoRepeatNGram(20, 90, whitelist)
    results = {"checkpoint": str(model_dir), "pages": len(layouts), "prompt": prompt, "tiers": {}}
    print(f"\n(b) read-back of {len(layouts)} rendered page(s) per tier with {model_dir}")
    print(f"{'tier':>8} {'view':>18} {'tokens/page':>12} {'text tok/page':>14} {'ratio':>7} {'NED':>7}  note")
    print(f"{'text':>8} {'-':>18} {'-':>12} {'-':>14} {'1.0x':>7} {0.0:>7.3f}  verbatim")
    for recipe in tiers:
        neds, tokens, text_tokens = [], [], []
        start = time.perf_counter()
        for layout in layouts:
            page = renderer.render(layout)
            views = recipe.views(page)
            n = recipe.image_tokens(page.size, model.config)
            ids = torch.tensor([encode_prompt(tok, prompt, [n])], device=device)
            crops = views.crops.to(device, dtype) if views.num_crops else None
            gt = layout.text
            gt_tokens = len(tok.encode(gt))
            out = model.generate(ids, views.global_view[None].to(device, dtype), crops, [views.num_crops],
                                 max_new_tokens=min(args.max_new_tokens, gt_tokens + 64), logits_processor=no_repeat)
            pred = tok.decode(out[0].tolist(), skip_special_tokens=True)
            neds.append(normalized_edit_distance(" ".join(pred.split()), " ".join(gt.split())))
            tokens.append(n)
            text_tokens.append(gt_tokens)
        untrained = bool(set(recipe.view_sizes) & untrained_sizes)
        view = f"{recipe.global_size}" + (f"+n x {recipe.crop_size}" if recipe.crop_size else "")
        ned = sum(neds) / len(neds)
        ratio = sum(text_tokens) / sum(tokens)
        print(f"{recipe.name:>8} {view:>18} {sum(tokens) / len(tokens):>12.0f} "
              f"{sum(text_tokens) / len(text_tokens):>14.0f} {ratio:>6.1f}x {ned:>7.3f}  "
              f"{'UNTRAINED query table' if untrained else ''} ({time.perf_counter() - start:.1f} s)")
        results["tiers"][recipe.name] = {"ned": ned, "neds": neds, "tokens_per_page": tokens,
                                       "text_tokens": text_tokens, "compression": ratio,
                                       "untrained_query_table": untrained}
    return results


def plot_read_back(results: dict, path: Path) -> None:
    """NED per tier against the tier's compression (text tokens per vision token): the forgetting curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tiers = results["tiers"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    x = [t["compression"] for t in tiers.values()]
    y = [t["ned"] for t in tiers.values()]
    ax.plot(x, y, "o-")
    for name, xi, yi in zip(tiers, x, y):
        ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("compression (text tokens / vision tokens)")
    ax.set_ylabel("read-back NED (0 = exact)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Optical memory read-back, {results['pages']} pages per tier")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    schedule = MemorySchedule.parse(args.schedule, args.drop_age) if args.schedule else (
        MemorySchedule(DEFAULT_SCHEDULE.tiers, args.drop_age))
    renderer = PageRenderer(page_size=args.page_size, font_size=args.font_size)

    from ocr2.processing.text import ByteTokenizer, load_tokenizer

    if args.checkpoint:
        from ocr2.weights import resolve_model_dir

        tokenizer, tok_name = load_tokenizer(resolve_model_dir(args.checkpoint)), "checkpoint tokenizer"
    elif args.tokenizer:
        tokenizer, tok_name = load_tokenizer(args.tokenizer), f"tokenizer {args.tokenizer}"
    else:
        tokenizer, tok_name = ByteTokenizer(), "byte tokenizer"
    tok_name = f"{tok_name}: {type(tokenizer).__name__}"

    print(f"(a) context tokens vs turns — {tok_name}; schedule "
          + ", ".join(f"{a}+: {t}" for a, t in schedule.tiers)
          + (f", dropped at {schedule.drop_age}" if schedule.drop_age else "")
          + f"; pages {renderer.page_size}px, {renderer.lines_per_page} lines of font {renderer.font_size}")
    rows = tokens_vs_turns(args, tokenizer, schedule, renderer)
    print_table(rows, args.budget)
    if isinstance(tokenizer, ByteTokenizer):
        print("note: the byte tokenizer spends one token per byte; a BPE tokenizer (~4 characters per token) makes "
              "the text costs and the ratios ~4x smaller (--tokenizer DIR to count with one).")
    png, csv_path = out / "tokens_vs_turns.png", out / "tokens_vs_turns.csv"
    plot(rows, args.budget, png, tok_name)
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"plot: {png}\ntable: {csv_path}")
    results = {"tokenizer": tok_name, "schedule": [list(t) for t in schedule.tiers], "drop_age": schedule.drop_age,
               "budget": args.budget, "policy": args.policy, "page_size": renderer.page_size,
               "font_size": renderer.font_size, "tokens_vs_turns": rows}

    if args.checkpoint:
        from ocr2.processing.reading import resolve_prompt

        if args.glyph_grid:
            tiers, page_renderer = list(GLYPH_TIERS), GlyphGridRenderer()
            texts = glyph_turns(400, args.seed + 1)
        else:  # fresh turns (not those of part (a)), at the schedule's image tiers
            tiers, page_renderer = list(schedule.image_modes), renderer
            texts = [turn_text(t) for t in synthetic_turns(400, args.words_min, args.words_max, args.seed + 1)]
        results["read_back"] = read_back(args, tiers, page_renderer, texts, resolve_prompt(args.prompt))
        plot_read_back(results["read_back"], out / "read_back.png")
        print(f"plot: {out / 'read_back.png'}")
    else:
        print("\n(b) read-back NED per age tier: skipped (no --checkpoint given; pass a trained ocr2 model or run "
              "directory with its tokenizer)")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"results: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

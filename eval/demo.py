"""The README's main job: a tiny OCR-2 visibly learns to read synthetic pages, on CPU, end to end.

1. generates synthetic glyph-grid pages (`ocr2-data synth`, configs/synth/demo_varied.json: random capitals, one
   per visual token, drawn in 11 faces of 4 font families at varied sizes, offsets, shades, blur and noise;
   configs/synth/prose.json gives two-column prose pages, which the tiny model does not learn to read in this
   budget, docs/demo.md). Besides `validation` (held-out pages drawn like the training pages) the config's
   `extra_splits` add `validation_unseen`: pages in a font family, at glyph sizes and offsets no training page has;
2. pretrains the vision tokenizer to name the glyph under each visual token (`python -m train.tokenizer_pretrain`,
   on the training pages only; `--tokenizer-steps 0` skips it and keeps the random tokenizer): the stand-in for
   the pretrained SAM + compressor the paper starts from. The reader below loads it and keeps it frozen
   (`init_from=RUN/tokenizer init_modules=[vision_tokenizer]`);
3. scores the untrained reader on both held-out splits (the "before" rows): `ocr2-train experiment=demo
   max_steps=0` writes the very model training starts from (same config, same seed) as a checkpoint;
4. trains it with `ocr2-train experiment=demo` (DeepSpeed on CPU, checkpoints, metrics.jsonl);
5. scores the trained model on the same pages (the "after" rows), prints the table and writes
   `demo_metrics.md`, `loss.png` and `ned.png` under the run directory.

Every stage is the real command a researcher would run; this script only chains them. Both checkpoints are read
the way they trained (their reading.json: single 256² views, the plain markdown prompt), with nothing restated
here but the generation cap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from eval.harness import evaluate, protocol
from eval.pages import iter_pages
from eval.plots import loss_curves, metric_bars
from eval.report_table import render_markdown_table
from eval.research.vision_reliance import vision_reliance
from ocr2.json_lines import read_json_lines
from ocr2.pipeline import OCRPipeline

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["model", "split", "pages", "page_ned", "text_edit", "reading_order_edit", "repetition_rate", "page_loss",
           "blank_loss", "vision_gain", "visual_variation"]  # the last four come from eval.research.vision_reliance


def _run(cmd: list[str], what: str) -> None:
    print(f"\n== {what}: {' '.join(cmd)}", flush=True)
    env = dict(os.environ, DS_ACCELERATOR="cpu", WANDB_MODE=os.environ.get("WANDB_MODE", "offline"))
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


# The held-out splits scored, in table order: pages drawn like the training pages, then (when the synth config
# has it) pages drawn in a font family, at sizes and offsets no training page has (configs/synth/demo_varied.json).
HELD_OUT = {"validation": "in-distribution", "validation_unseen": "unseen renderings"}
# Vision-tokenizer pretraining steps before the reader trains (train/tokenizer_pretrain.py; docs/demo.md).
TOKENIZER_STEPS = 2000


def _score(run: Path, data: Path, split: str, limit: int, max_new_tokens: int, out_dir: Path) -> dict:
    pipe = OCRPipeline.from_pretrained(run, device="cpu", max_new_tokens=max_new_tokens, batch_size=16)
    pages = list(iter_pages(data, split, limit))
    result = evaluate(pipe, pages, out_dir, info=protocol(pipe, str(run), str(data), split))
    # Reading or guessing? The same answers scored with blank pages (eval/research/vision_reliance.py).
    reliance = vision_reliance(pipe.model, pages, pipe.tokenizer, pipe.prompt, pipe.recipe)
    result["summary"].update({k: reliance[k] for k in COLUMNS[-4:]})
    return result


def _eval_dir(run_dir: Path, name: str, split: str) -> Path:
    """Where one scoring writes its predictions: eval_trained, eval_trained_validation_unseen, ..."""
    return run_dir / (f"eval_{name}" + ("" if split == "validation" else f"_{split}"))


def _score_splits(model: Path, data: Path, splits: list[str], args, name: str, run_dir: Path) -> dict[str, dict]:
    out = {}
    for split in splits:
        print(f"\n== scoring the {name} model on {split} ({HELD_OUT[split]})", flush=True)
        out[split] = _score(model, data, split, args.eval_pages, args.max_new_tokens, _eval_dir(run_dir, name, split))
    return out


def _wanted_build(args) -> dict:
    """What `ocr2-data synth` records for the dataset this demo asks for (compared with what is on disk)."""
    from data_pipelines import SynthConfig

    config = SynthConfig.load(ROOT / args.synth_config).to_dict()
    splits = {"train": args.train_pages, "validation": args.eval_pages, **dict.fromkeys(config["extra_splits"],
                                                                                          args.eval_pages)}
    return {"config": json.loads(json.dumps(config)), "splits": splits}


def _dataset_is_current(data: Path, args) -> bool:
    """A dataset left by an earlier demo with other pages (another config or page count) is rebuilt, not reused."""
    info_path = data / "ocr2_dataset.json"
    if not info_path.exists():
        return False
    info, wanted = json.loads(info_path.read_text()), _wanted_build(args)
    return info.get("config") == wanted["config"] and info.get("splits") == wanted["splits"]


def _held_out_splits(data: Path) -> list[str]:
    present = json.loads((data / "ocr2_dataset.json").read_text()).get("splits", {})
    return [s for s in HELD_OUT if present.get(s)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/demo_varied")
    p.add_argument("--run-dir", default="runs/demo")
    p.add_argument("--synth-config", default="configs/synth/demo_varied.json",
                   help="page generator settings, e.g. configs/synth/demo.json (one font, one size, no jitter: "
                        "the demo's pages until 2026-12-01) or configs/synth/prose.json (two-column prose pages)")
    p.add_argument("--train-pages", type=int, default=20000)
    p.add_argument("--eval-pages", type=int, default=32)
    p.add_argument("--steps", type=int, default=None, help="training steps (default: configs/experiment/demo.yaml)")
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--tokenizer-steps", type=int, default=TOKENIZER_STEPS,
                   help="vision-tokenizer pretraining steps (train/tokenizer_pretrain.py); 0: keep it random")
    p.add_argument("overrides", nargs="*", help="extra ocr2-train overrides, e.g. stage.lr=1e-3")
    args = p.parse_args(argv)
    start = time.perf_counter()
    data, run_dir = ROOT / args.data, ROOT / args.run_dir
    tokenizer_dir = run_dir / "tokenizer"
    init = ([f"init_from={tokenizer_dir}", "init_modules=[vision_tokenizer]"] if args.tokenizer_steps else [])
    common = [f"data.path={data}", "checkpoint.resume=never", *init, *args.overrides]
    overrides = [*common, f"run_dir={run_dir}"] + ([f"max_steps={args.steps}"] if args.steps else [])

    if not _dataset_is_current(data, args):
        # The config carries its own degradations (blur, noise) and held-out splits, so no flags beyond it.
        _run([sys.executable, "-m", "data_pipelines", "synth", str(data), "--train", str(args.train_pages),
              "--validation", str(args.eval_pages), "--config", str(ROOT / args.synth_config)], "synthetic pages")
    splits = _held_out_splits(data)
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = None
    if args.tokenizer_steps:
        _run([sys.executable, "-m", "train.tokenizer_pretrain", "--out", str(tokenizer_dir), "--steps",
              str(args.tokenizer_steps), "--eval-pages", str(args.eval_pages), "experiment=demo",
              f"data.path={data}", *args.overrides], "vision tokenizer pretraining (glyph per visual token)")
        tokenizer = json.loads((tokenizer_dir / "tokenizer_pretrain.json").read_text())["accuracy"][-1]
    untrained = run_dir / "untrained"
    _run([sys.executable, "-m", "train", "experiment=demo", *common, f"run_dir={untrained}", "max_steps=0"],
         "the untrained model (step 0 of the same run)")
    before = _score_splits(untrained, data, splits, args, "untrained", run_dir)
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)  # a fresh curve, not appended to an older demo's
    _run([sys.executable, "-m", "train", "experiment=demo", *overrides], "training")
    after = _score_splits(run_dir, data, splits, args, "trained", run_dir)

    rows = [dict(result[split]["summary"], model=name, split=split)
            for name, result in (("untrained", before), ("trained", after)) for split in splits]
    table = render_markdown_table(rows, COLUMNS)
    steps = read_json_lines(run_dir / "metrics.jsonl")
    loss_curves({"demo": [(m["step"], m["loss"]) for m in steps]}, run_dir / "loss.png")
    metric_bars({f"{name}, {HELD_OUT[split]}": result[split]["summary"]
                 for name, result in (("untrained", before), ("trained", after)) for split in splits},
                "page_ned", run_dir / "ned.png")
    minutes = (time.perf_counter() - start) / 60
    ned = {split: f"{before[split]['summary']['page_ned']:.3f} before -> {after[split]['summary']['page_ned']:.3f} "
                  f"after" for split in splits}
    text = f"{table}\n\n"
    text += "".join(f"held-out page NED, {HELD_OUT[split]} ({split}): {ned[split]}\n" for split in splits)
    text += (f"({len(steps) and steps[-1]['step']} training steps, {minutes:.1f} min in all)\n"
             f"vision gain (blank-page loss - page loss, nats/token; ~0 = not reading the page), in-distribution: "
             f"{before['validation']['summary']['vision_gain']:.3f} before -> "
             f"{after['validation']['summary']['vision_gain']:.3f} after\n"
             f"visual variation (page-to-page share of the decoder's visual input; ~0 = vision path collapsed): "
             f"{_fmt(before['validation']['summary']['visual_variation'])} before -> "
             f"{_fmt(after['validation']['summary']['visual_variation'])} after\n")
    if tokenizer is not None:
        text += ("glyph accuracy of the pretrained vision tokenizer (linear head per visual token): " + ", ".join(
            f"{HELD_OUT[split]} {tokenizer[split]['glyph_accuracy']:.3f}" for split in splits if split in tokenizer)
            + f" ({args.tokenizer_steps} steps)\n")
    for split in splits:
        sample = sorted(after[split]["pages"])[0]
        truth = next(p.markdown for p in iter_pages(data, split, args.eval_pages) if p.stem == sample)
        prediction = (_eval_dir(run_dir, "trained", split) / "predictions" / f"{sample}.md").read_text().strip()
        text += f"\nexample, {HELD_OUT[split]} ({sample}):\n  truth:      {truth!r}\n  prediction: {prediction!r}\n"
    (run_dir / "demo_metrics.md").write_text(text)
    print("\n" + text + f"\nplots: {run_dir / 'loss.png'}, {run_dir / 'ned.png'}")


if __name__ == "__main__":
    main()

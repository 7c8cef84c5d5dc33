"""The README's main job: a tiny OCR-2 visibly learns to read synthetic pages, on CPU, end to end.

1. generates synthetic glyph-grid pages (`ocr2-data synth`, configs/synth/demo.json: random capitals, one per
   visual token; configs/synth/prose.json gives two-column prose pages, which the tiny model does not learn to
   read in this budget, docs/demo.md);
2. scores the untrained model on held-out pages (the "before" row): `ocr2-train experiment=demo max_steps=0`
   writes the very model training starts from (same config, same seed) as a checkpoint;
3. trains it with `ocr2-train experiment=demo` (DeepSpeed on CPU, checkpoints, metrics.jsonl);
4. scores the trained model on the same held-out pages (the "after" row), prints the table and writes
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
from ocr2.pipeline import OCRPipeline

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["model", "pages", "page_ned", "text_edit", "reading_order_edit", "repetition_rate", "page_loss",
           "blank_loss", "vision_gain", "visual_variation"]  # the last four come from eval.research.vision_reliance


def _run(cmd: list[str], what: str) -> None:
    print(f"\n== {what}: {' '.join(cmd)}", flush=True)
    env = dict(os.environ, DS_ACCELERATOR="cpu", WANDB_MODE=os.environ.get("WANDB_MODE", "offline"))
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _score(run: Path, data: Path, limit: int, max_new_tokens: int, out_dir: Path) -> dict:
    pipe = OCRPipeline.from_pretrained(run, device="cpu", max_new_tokens=max_new_tokens, batch_size=16)
    pages = list(iter_pages(data, "validation", limit))
    result = evaluate(pipe, pages, out_dir, info=protocol(pipe, str(run), str(data), "validation"))
    # Reading or guessing? The same answers scored with blank pages (eval/research/vision_reliance.py).
    reliance = vision_reliance(pipe.model, pages, pipe.tokenizer, pipe.prompt, pipe.recipe)
    result["summary"].update({k: reliance[k] for k in COLUMNS[-4:]})
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/demo")
    p.add_argument("--run-dir", default="runs/demo")
    p.add_argument("--synth-config", default="configs/synth/demo.json",
                   help="page generator settings, e.g. configs/synth/prose.json (two-column prose pages)")
    p.add_argument("--train-pages", type=int, default=20000)
    p.add_argument("--eval-pages", type=int, default=32)
    p.add_argument("--steps", type=int, default=None, help="training steps (default: configs/experiment/demo.yaml)")
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("overrides", nargs="*", help="extra ocr2-train overrides, e.g. stage.lr=1e-3")
    args = p.parse_args(argv)
    start = time.perf_counter()
    data, run_dir = ROOT / args.data, ROOT / args.run_dir
    common = [f"data.path={data}", "checkpoint.resume=never", *args.overrides]
    overrides = [*common, f"run_dir={run_dir}"] + ([f"max_steps={args.steps}"] if args.steps else [])

    if not (data / "ocr2_dataset.json").exists():
        _run([sys.executable, "-m", "data_pipelines", "synth", str(data), "--train", str(args.train_pages),
              "--validation", str(args.eval_pages), "--config", str(ROOT / args.synth_config),
              "--no-degrade"], "synthetic pages")
    run_dir.mkdir(parents=True, exist_ok=True)
    untrained = run_dir / "untrained"
    _run([sys.executable, "-m", "train", "experiment=demo", *common, f"run_dir={untrained}", "max_steps=0"],
         "the untrained model (step 0 of the same run)")
    print("\n== scoring the untrained model on held-out pages", flush=True)
    before = _score(untrained, data, args.eval_pages, args.max_new_tokens, run_dir / "eval_untrained")
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)  # a fresh curve, not appended to an older demo's
    _run([sys.executable, "-m", "train", "experiment=demo", *overrides], "training")
    after = _score(run_dir, data, args.eval_pages, args.max_new_tokens, run_dir / "eval_trained")

    rows = [dict(before["summary"], model="untrained"), dict(after["summary"], model="trained")]
    table = render_markdown_table(rows, COLUMNS)
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    loss_curves({"demo": [(m["step"], m["loss"]) for m in steps]}, run_dir / "loss.png")
    metric_bars({"untrained": before["summary"], "trained": after["summary"]}, "page_ned", run_dir / "ned.png")
    sample = sorted(after["pages"])[0]
    truth = next(p.markdown for p in iter_pages(data, "validation", args.eval_pages) if p.stem == sample)
    prediction = (run_dir / "eval_trained" / "predictions" / f"{sample}.md").read_text().strip()
    minutes = (time.perf_counter() - start) / 60
    text = (f"{table}\n\nheld-out page NED: {before['summary']['page_ned']:.3f} before -> "
            f"{after['summary']['page_ned']:.3f} after training ({len(steps) and steps[-1]['step']} steps, "
            f"{minutes:.1f} min in all)\n"
            f"vision gain (blank-page loss - page loss, nats/token; ~0 = not reading the page): "
            f"{before['summary']['vision_gain']:.3f} before -> {after['summary']['vision_gain']:.3f} after\n"
            f"visual variation (page-to-page share of the decoder's visual input; ~0 = vision path collapsed): "
            f"{_fmt(before['summary']['visual_variation'])} before -> {_fmt(after['summary']['visual_variation'])} "
            f"after\n\n"
            f"example ({sample}):\n  truth:      {truth!r}\n  prediction: {prediction!r}\n")
    (run_dir / "demo_metrics.md").write_text(text)
    print("\n" + text + f"\nplots: {run_dir / 'loss.png'}, {run_dir / 'ned.png'}")


if __name__ == "__main__":
    main()

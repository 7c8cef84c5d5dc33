"""`ocr2-eval` (Hydra): evaluate a checkpoint on a dataset, write predictions, metrics.json and summary.md."""

from __future__ import annotations

import json
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from eval.harness import evaluate, protocol
from eval.pages import iter_pages
from eval.report_table import render_markdown_table
from ocr2.pipeline import OCRPipeline
from ocr2.weights import resolve_model_dir

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
SUMMARY_COLUMNS = ["pages", "page_ned", "text_edit", "reading_order_edit", "table_teds", "table_teds_s",
                   "formula_edit", "repetition_rate"]


def run(cfg: DictConfig) -> dict:
    model_dir = resolve_model_dir(cfg.checkpoint)
    pipe = OCRPipeline.from_pretrained(model_dir, device=cfg.device, ngram_size=int(cfg.ngram_size),
                                       ngram_window=int(cfg.ngram_window), prompt=cfg.prompt,
                                       crop_mode=bool(cfg.crop_mode), single_view=bool(cfg.get("single_view", False)),
                                       resolution_mode=cfg.get("resolution_mode"),
                                       max_new_tokens=int(cfg.max_new_tokens),
                                       batch_size=int(cfg.batch_size))
    pages = list(iter_pages(cfg.data.path, cfg.data.split, cfg.data.limit))
    if not pages:
        raise ValueError(f"{cfg.data.path} ({cfg.data.split}): no pages to evaluate")
    out = Path(cfg.out_dir)
    report = evaluate(pipe, pages, out, info=protocol(pipe, str(model_dir), cfg.data.path, cfg.data.split))
    table = render_markdown_table([report["summary"]], SUMMARY_COLUMNS)
    (out / "summary.md").write_text(table + "\n\nProtocol:\n```json\n" + json.dumps(report["protocol"], indent=1)
                                    + "\n```\n")
    print(table)
    print(f"ocr2-eval: predictions and metrics in {out}")
    return report


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _app(cfg: DictConfig) -> float | None:
    return run(cfg)["summary"].get("page_ned")


def main() -> None:
    _app()


if __name__ == "__main__":
    main()

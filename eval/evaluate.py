"""`ocr2-eval` (Hydra): evaluate a checkpoint on a dataset, write predictions, metrics.json and summary.md."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from configs import CONFIG_DIR  # the yaml groups, shipped inside the package (configs/__init__.py)
from eval.harness import evaluate, protocol
from eval.pages import iter_pages
from eval.report_table import render_markdown_table
from ocr2.pipeline import OCRPipeline
from ocr2.processing.reading import RELEASE_READING
from ocr2.weights import resolve_model_dir

SUMMARY_COLUMNS = ["pages", "page_ned", "text_edit", "reading_order_edit", "table_teds", "table_teds_s",
                   "formula_edit", "repetition_rate"]


def check_config(cfg: DictConfig) -> None:
    """Bad values fail here, naming the key, before a model is loaded."""
    if int(cfg.batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    RELEASE_READING.replace(**reading_overrides(cfg))  # the reading recipe checks its own values
    if not Path(cfg.data.path).exists():
        raise FileNotFoundError(f"data.path={cfg.data.path} does not exist")


def reading_overrides(cfg: DictConfig) -> dict:
    """The reading items set in the config (None: the checkpoint's reading recipe decides)."""
    return {k: cfg.get(k) for k in ("views", "prompt", "max_new_tokens", "ngram_size", "ngram_window")}


def run(cfg: DictConfig) -> dict:
    check_config(cfg)
    model_dir = resolve_model_dir(cfg.checkpoint)
    pipe = OCRPipeline.from_pretrained(model_dir, device=cfg.device, batch_size=int(cfg.batch_size),
                                       **reading_overrides(cfg))
    pages = list(iter_pages(cfg.data.path, cfg.data.split, cfg.data.limit))
    if not pages:
        raise ValueError(f"{cfg.data.path} ({cfg.data.split}): no pages to evaluate")
    out = Path(cfg.out_dir) if cfg.get("out_dir") else Path(HydraConfig.get().runtime.output_dir)
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

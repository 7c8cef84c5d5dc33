"""`ocr2-eval` (Hydra): evaluate a checkpoint on a dataset, write predictions, metrics.json and summary.md.

`data.path`: a dataset written by ocr2-data (its `data.split`, by default the split its builder wrote) or the
official OmniDocBench release layout (`OmniDocBench.json` + `images/`, e.g. the full 1,355-page v1.5 release).
Pages stream through, batched by view count; a rerun with the same `out_dir` resumes (eval/harness.py)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from configs import CONFIG_DIR  # the yaml groups, shipped inside the package (configs/__init__.py)
from eval.eval_summary import SUMMARY_COLUMNS, summary_markdown
from eval.harness import evaluate, protocol
from eval.report_table import render_markdown_table
from eval.sources import open_source
from ocr2.pipeline import OCRPipeline
from ocr2.processing.reading import RELEASE_READING
from ocr2.weights import resolve_model_dir


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
    source = open_source(cfg.data.path, cfg.data.get("split"), cfg.data.get("limit"), cfg.data.get("images"))
    if source.total == 0:
        raise ValueError(f"{source.path} ({source.split or source.layout}): no pages to evaluate")
    pipe = OCRPipeline.from_pretrained(model_dir, device=cfg.device, batch_size=int(cfg.batch_size),
                                       **reading_overrides(cfg))
    out = Path(cfg.out_dir) if cfg.get("out_dir") else Path(HydraConfig.get().runtime.output_dir)
    info = protocol(pipe, str(model_dir), source.path, source.split, source.layout)
    cdm = {k: cfg.cdm.get(k) for k in ("odb", "python", "workers")} if cfg.get("cdm") else None
    report = evaluate(pipe, source.pages, out, info=info, total=source.total, cdm=cdm)
    (out / "summary.md").write_text(summary_markdown(report), encoding="utf-8")
    print(render_markdown_table([report["summary"]], SUMMARY_COLUMNS))
    print(f"ocr2-eval: predictions and metrics in {out}")
    return report


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _app(cfg: DictConfig) -> float | None:
    return run(cfg)["summary"].get("page_ned")


def main() -> None:
    _app()


if __name__ == "__main__":
    main()

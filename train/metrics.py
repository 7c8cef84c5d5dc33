"""A self-describing run directory: config.yaml, metrics.jsonl, train.log, summary.json; wandb (offline default)."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ocr2.json_lines import read_json_lines


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a skipped step logs loss null
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


WANDB_ID = "wandb_id.txt"


def wandb_run_id(run_dir: Path) -> str:
    """This run's wandb id: made on the first start, read back on every resume."""
    path = run_dir / WANDB_ID
    if path.exists():
        return path.read_text().strip()
    import uuid

    run_id = uuid.uuid4().hex[:12]
    path.write_text(run_id + "\n")
    return run_id


class MetricsLogger:
    def __init__(self, run_dir: Path, cfg: DictConfig, enabled: bool):
        self.enabled, self.wandb = enabled, None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        self.file = open(run_dir / "metrics.jsonl", "a")
        handler = logging.FileHandler(run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("ocr2")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        if cfg.logger.name == "wandb":
            import wandb

            os.environ.setdefault("WANDB_MODE", cfg.logger.get("mode", "offline"))
            # One wandb run per training run, across resumes: its id is kept in the run directory.
            self.wandb = wandb.init(project=cfg.logger.project, entity=cfg.logger.get("entity"),
                                    id=wandb_run_id(run_dir), resume="allow", dir=str(run_dir),
                                    name=cfg.logger.get("run_name") or run_dir.name,
                                    group=cfg.logger.get("group"), tags=list(cfg.logger.get("tags", [])),
                                    mode=cfg.logger.get("mode", "offline"),
                                    config=OmegaConf.to_container(cfg, resolve=True))

    def truncate_after(self, step: int) -> None:
        """Drop the records after `step` (and a torn last line): what a resume from that step will log again."""
        if not self.enabled:
            return
        self.file.close()
        path = self.run_dir / "metrics.jsonl"
        kept = [r for r in read_json_lines(path) if isinstance(r, dict) and r.get("step", 0) <= step]
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))  # as log() writes them
        os.replace(tmp, path)
        self.file = open(path, "a")

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        record = _clean(record)
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        logging.getLogger("ocr2.train").info(json.dumps(record))
        if self.wandb is not None:
            flat = {k: v for k, v in record.items() if isinstance(v, (int, float)) and v is not None}
            self.wandb.log(flat, step=record["step"])

    def close(self, summary: dict | None = None) -> None:
        if not self.enabled:
            return
        if summary is not None:
            (self.run_dir / "summary.json").write_text(json.dumps(_clean(summary), indent=2))
        self.file.close()
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None

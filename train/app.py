"""`ocr2-train` / `python -m train`: the Hydra app. Launch one process, or many with torchrun / deepspeed.

    ocr2-train experiment=tiny_synth
    torchrun --nproc_per_node 2 -m train trainer=zero2
    deepspeed --no_local_rank --num_gpus 8 train/app.py trainer=zero3
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from configs import CONFIG_DIR  # the yaml groups, shipped inside the package (configs/__init__.py)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _app(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from train.trainer import train

    hydra_cfg = HydraConfig.get()
    cfg.run_dir = hydra_cfg.runtime.output_dir  # hydra.run/sweep.dir: run_dir, or <run_dir>/<job> in a sweep
    if cfg.logger.name == "wandb":
        _name_wandb_run(cfg, hydra_cfg)

    summary = train(cfg)
    return summary.get("final_loss")


def _name_wandb_run(cfg: DictConfig, hydra_cfg) -> None:
    """Readable wandb names: the run's name, and in a sweep its job number and overrides, grouped by the sweep."""
    from hydra.types import RunMode

    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if not cfg.logger.get("run_name"):
        overrides = hydra_cfg.job.override_dirname
        cfg.logger.run_name = (f"{cfg.run_name}-{hydra_cfg.job.num}" + (f":{overrides}" if overrides else "")
                               if sweep else str(cfg.run_name))
    if sweep and not cfg.logger.get("group"):
        cfg.logger.group = os.path.basename(os.path.normpath(hydra_cfg.sweep.dir))


def main() -> None:
    # The deepspeed launcher appends --local_rank=N unless given --no_local_rank; Hydra would reject it.
    sys.argv = [a for a in sys.argv if not a.startswith("--local_rank")]
    # The device (and DS_ACCELERATOR) is decided once, in train/dist.py via train/device.py, from trainer.device.
    _app()


if __name__ == "__main__":
    main()

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

    cfg.run_dir = HydraConfig.get().runtime.output_dir  # hydra.run/sweep.dir: run_dir, or <run_dir>/<job> in a sweep

    summary = train(cfg)
    return summary.get("final_loss")


def main() -> None:
    # The deepspeed launcher appends --local_rank=N unless given --no_local_rank; Hydra would reject it.
    sys.argv = [a for a in sys.argv if not a.startswith("--local_rank")]
    os.environ.setdefault("DS_ACCELERATOR", "cpu" if not _cuda() else "cuda")
    _app()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()

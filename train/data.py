"""The training data of a run: the Hydra `data` group + the stage's view recipes -> ocr2.data.TrainLoader."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ocr2 import OCR2Config
from ocr2.data.loader import DataConfig, TrainLoader
from ocr2.processing.text import Tokenizer
from train.builders import stage_views
from train.dist import DistInfo

log = logging.getLogger("ocr2.train")

# `data.num_workers=auto`: one CPU per rank stays with the training process (the step loop, DeepSpeed's host work),
# the others preprocess; more than 8 workers per rank buys little (each holds a prefetched batch) and a node's
# memory pays for every one.
MAX_AUTO_WORKERS = 8


def cpus_per_rank() -> int:
    """The CPUs this process may run on, shared by the ranks of its node: torchrun's ranks inherit one affinity
    set (LOCAL_WORLD_SIZE ranks share it); an srun task is bound to its own CPUs (SLURM_CPUS_PER_TASK)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if "LOCAL_WORLD_SIZE" in os.environ:
        return max(1, cpus // max(1, int(os.environ["LOCAL_WORLD_SIZE"])))
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return max(1, min(cpus, int(os.environ["SLURM_CPUS_PER_TASK"])))
    return cpus


def resolve_num_workers(value, cpus: int) -> int:
    """`data.num_workers`: a count (0: batches are built in the training process), or `auto` = min(cpus - 1, 8)
    for `cpus` CPUs per rank."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return max(0, min(cpus - 1, MAX_AUTO_WORKERS))
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if n < 0 or (isinstance(value, float) and value != n):
        raise ValueError(f"data.num_workers={value!r}: give a count of DataLoader workers per rank (0 or more) or "
                         f"auto (min(CPUs per rank - 1, {MAX_AUTO_WORKERS}))")
    return n


def data_config(cfg: DictConfig, model_cfg: OCR2Config) -> DataConfig:
    d, stage = cfg.data, cfg.stage
    source = d.get("source") or "parquet"
    path = Path(d.path)
    if source == "parquet" and not path.exists():  # a hub source's path is a Hub id, not a local path
        raise FileNotFoundError(f"data.path={d.path} does not exist; build a dataset first, e.g. "
                                f"`ocr2-data synth {d.path} --train 256 --validation 32` (or stream a Hub "
                                f"dataset with data.source=hub)")
    columns = d.get("columns")
    columns = OmegaConf.to_container(columns) if columns is not None else None
    return DataConfig(path=str(path) if source == "parquet" else str(d.path), split=d.split,
                      views=tuple(stage_views(cfg)), batch_size=int(cfg.trainer.micro_batch_size),
                      max_length=int(d.max_length), packing=bool(stage.packing), target=d.target,
                      prompt=d.get("prompt"), num_workers=resolve_num_workers(d.num_workers, cpus_per_rank()), shuffle=bool(d.shuffle),
                      seed=int(cfg.seed), source=source, columns=columns, subset=d.get("subset"),
                      shuffle_buffer=int(d.get("shuffle_buffer") or 1000))


def build_train_data(cfg: DictConfig, model_cfg: OCR2Config, tokenizer: Tokenizer, info: DistInfo,
                     run_dir: Path) -> TrainLoader:
    # Pinned batches on CUDA: the trainer's copies to the device are then non-blocking (train/dist.py to_device).
    dc = dataclasses.replace(data_config(cfg, model_cfg), pin_memory=info.device.type == "cuda")
    return TrainLoader(dc, tokenizer, model_cfg, rank=info.rank, world_size=info.world_size)


def restore_state(data: TrainLoader, state: dict, cfg: DictConfig) -> None:
    """Resume the loader at its saved position. The position is per reader (rank x worker), so with
    `data.num_workers=auto` a resume keeps the checkpoint's worker count even where this machine would pick
    another; an explicit count must match (the loader says so)."""
    saved = state.get("num_workers")
    auto = str(cfg.data.num_workers).strip().lower() == "auto"
    if auto and saved is not None and saved != data.cfg.num_workers:
        log.info("data.num_workers=auto: %d workers per rank, as in the checkpoint (this machine: %d)", saved,
                 data.cfg.num_workers)
        data.cfg = dataclasses.replace(data.cfg, num_workers=int(saved))
    data.load_state_dict(state)

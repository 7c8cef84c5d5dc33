"""The training data of a run: the Hydra `data` group + the stage's view recipes -> ocr2.data.TrainLoader."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ocr2 import OCR2Config
from ocr2.data.loader import DataConfig, TrainLoader
from ocr2.processing.text import Tokenizer
from train.builders import stage_views
from train.dist import DistInfo


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
                      prompt=d.get("prompt"), num_workers=int(d.num_workers), shuffle=bool(d.shuffle),
                      seed=int(cfg.seed), source=source, columns=columns, subset=d.get("subset"),
                      shuffle_buffer=int(d.get("shuffle_buffer") or 1000))


def build_train_data(cfg: DictConfig, model_cfg: OCR2Config, tokenizer: Tokenizer, info: DistInfo,
                     run_dir: Path) -> TrainLoader:
    # Pinned batches on CUDA: the trainer's copies to the device are then non-blocking (train/dist.py to_device).
    dc = dataclasses.replace(data_config(cfg, model_cfg), pin_memory=info.device.type == "cuda")
    return TrainLoader(dc, tokenizer, model_cfg, rank=info.rank, world_size=info.world_size)

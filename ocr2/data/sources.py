"""Where a run's rows come from (`data.source`), in our column names (`data.columns`), checked before training.

    parquet  data.path is a dataset folder written by ocr2-data, or any parquet in the Hub's layout
             (`<dir>/data/<split>-*.parquet`, `<dir>/<split>/*.parquet`), or one parquet file: ShardedStream
    hub      data.path is a Hub id (or anything datasets opens, or a save_to_disk folder), streamed: HubStream

A foreign dataset's columns are mapped onto ours by `data.columns` (columns.py); a missing column is one error
naming the dataset and the columns it has, before any worker starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ocr2.data.columns import ColumnMap, MappedStream
from ocr2.data.stream import ShardedStream, find_parquet_files

SOURCES = ("parquet", "hub")


def open_stream(cfg, ours: Sequence[str], rank: int = 0, world_size: int = 1):
    """The row stream of `cfg` (a DataConfig) yielding rows in our column names; `ours` are the columns the
    target reads, in our names."""
    if cfg.source not in SOURCES:
        raise ValueError(f"unknown data.source {cfg.source!r}; choose from {SOURCES}")
    columns = ColumnMap.from_config(cfg.columns)
    read = columns.read_columns(ours)
    if cfg.source == "hub":
        from ocr2.data.hub import HubStream

        stream = HubStream(cfg.path, cfg.split, read, subset=cfg.subset, seed=cfg.seed, shuffle=cfg.shuffle,
                           buffer_size=cfg.shuffle_buffer, rank=rank, world_size=world_size)
        where = f"data.path={cfg.path} (data.source=hub, split {cfg.split!r})"
        local = Path(cfg.path)
        root = local if local.is_dir() else None
    else:
        files = find_parquet_files(cfg.path, cfg.split)
        stream = ShardedStream(files, columns=read, seed=cfg.seed, shuffle=cfg.shuffle, mix=cfg.mix,
                               name_rows=not columns.is_identity)
        where = str(files[0])
        root = _dataset_root(Path(cfg.path))
    columns.check(stream.column_names, where, cfg.target, ours)
    if columns.is_identity and cfg.source == "parquet":
        return stream  # our own schema: rows are used as they are
    return MappedStream(stream, columns, root)


def _dataset_root(path: Path) -> Path:
    """The folder relative image paths of a parquet dataset are relative to (the Hub layout's top folder)."""
    if path.is_file():
        path = path.parent
        return path.parent if path.name == "data" else path
    return path

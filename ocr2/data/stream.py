"""A streaming reader over parquet shards, split exactly between ranks and loader workers, with a resumable position.

Every process of a run ("consumer": rank r, loader worker w -> consumer r * num_workers + w of C) reads a disjoint,
contiguous slice of one epoch-wide order of all rows, so over an epoch each row is read by exactly one consumer,
exactly once, whatever the shard sizes; slices differ in length by at most one row.

The epoch order shuffles whole row groups (a row group is the unit parquet reads), and each consumer then mixes
the rows of `mix` consecutive row groups at a time, so a batch is not one writer's consecutive pages while only
`mix` row groups are held in memory. The order is a pure function of (seed, epoch), so a consumer's position is
just (epoch, offset): how many rows of its slice it has handed out. Resuming regenerates the same order and skips
to the offset, without reading the rows before it. Resuming requires the same number of consumers (the slices
depend on C); `TrainLoader.load_state_dict` checks that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np


def find_parquet_files(path: str | Path, split: str = "train") -> list[Path]:
    """The parquet shards of one split, sorted by name. Layouts, first match wins: `<path>/data/<split>-*.parquet`
    (what ocr2-data writes; the Hugging Face Hub layout), `<path>/<split>/*.parquet`, `<path>/<split>-*.parquet`;
    `path` may also be one parquet file."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such dataset directory or parquet file")
    for pattern in (f"data/{split}-*.parquet", f"{split}/*.parquet", f"{split}-*.parquet"):
        files = sorted(path.glob(pattern))
        if files:
            return files
    raise FileNotFoundError(f"{path}: no parquet shards for split {split!r} (looked for data/{split}-*.parquet, "
                            f"{split}/*.parquet, {split}-*.parquet)")


@dataclass(frozen=True)
class RowGroup:
    file: int  # index into ShardedStream.files
    index: int  # row group index inside that file
    num_rows: int


@dataclass(frozen=True)
class Span:
    """Rows [start, stop) of one row group, as a consumer reads them."""

    unit: int  # index into ShardedStream.units
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Position:
    """Where a consumer is: `offset` rows of its slice of epoch `epoch` already handed out."""

    epoch: int = 0
    offset: int = 0


class ShardedStream:
    def __init__(self, files: Sequence[str | Path], columns: Sequence[str] | None = None, seed: int = 0,
                 shuffle: bool = True, mix: int = 4, name_rows: bool = False):
        """`name_rows`: every row also carries `"__where__": "<file name> row <n>"` (n counts from 0 within the
        file), which names a record of a dataset without an id column (see columns.py)."""
        import pyarrow.parquet as pq

        if not files:
            raise ValueError("ShardedStream needs at least one parquet file")
        self.files = [Path(f) for f in files]
        self.seed, self.shuffle, self.mix = int(seed), bool(shuffle), max(1, int(mix))
        self.name_rows = bool(name_rows)
        self.units: list[RowGroup] = []
        self.first_rows: list[int] = []  # per unit: its first row's index within its file
        for i, f in enumerate(self.files):
            try:
                meta = pq.ParquetFile(f).metadata
            except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError for unreadable files
                raise ValueError(f"{f}: not a readable parquet file ({e})") from e
            first = 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                if n:
                    self.units.append(RowGroup(i, g, n))
                    self.first_rows.append(first)
                first += n
        self.num_rows = sum(u.num_rows for u in self.units)
        # Columns every shard has; asking for one a shard lacks would fail deep inside a loader worker.
        names = [set(pq.ParquetFile(f).schema_arrow.names) for f in self.files]
        self.column_names = sorted(set.intersection(*names))
        self.columns = [c for c in columns if c in self.column_names] if columns else None
        if not self.num_rows:
            raise ValueError(f"{self.files[0].parent}: the parquet shards hold no rows")

    # ------------------------------------------------------------------ the plan (pure functions of seed, epoch)
    def unit_order(self, epoch: int) -> list[int]:
        order = list(range(len(self.units)))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(order)).tolist()
        return order

    def slice_bounds(self, consumer: int, num_consumers: int) -> tuple[int, int]:
        """[start, stop) of the consumer's slice in the epoch order (same for every epoch)."""
        if not 0 <= consumer < num_consumers:
            raise ValueError(f"consumer {consumer} out of range for {num_consumers} consumers")
        return consumer * self.num_rows // num_consumers, (consumer + 1) * self.num_rows // num_consumers

    def spans(self, epoch: int, consumer: int, num_consumers: int) -> list[Span]:
        """The row-group pieces of the consumer's slice of epoch `epoch`, in order."""
        lo, hi = self.slice_bounds(consumer, num_consumers)
        out, pos = [], 0
        for unit in self.unit_order(epoch):
            n = self.units[unit].num_rows
            a, b = max(lo, pos), min(hi, pos + n)
            if a < b:
                out.append(Span(unit, a - pos, b - pos))
            pos += n
            if pos >= hi:
                break
        return out

    def windows(self, epoch: int, consumer: int, num_consumers: int) -> list[list[Span]]:
        spans = self.spans(epoch, consumer, num_consumers)
        return [spans[i:i + self.mix] for i in range(0, len(spans), self.mix)]

    def window_order(self, epoch: int, consumer: int, window: int, size: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(size)
        return np.random.default_rng([self.seed, epoch, consumer, window, 1]).permutation(size)

    # ------------------------------------------------------------------ reading
    def iter_rows(self, consumer: int = 0, num_consumers: int = 1, start: Position = Position(),
                  epochs: int | None = None) -> Iterator[tuple[Position, dict]]:
        """Rows of the consumer's slices from `start` on, each with the position *after* it. `epochs=None`
        repeats forever (epoch 0, 1, ...); otherwise stops after epoch `epochs - 1`."""
        import pyarrow.parquet as pq

        lo, hi = self.slice_bounds(consumer, num_consumers)
        if hi <= lo:
            raise ValueError(f"dataset has {self.num_rows} rows, fewer than the {num_consumers} readers "
                             f"(ranks x loader workers): reader {consumer} would get none; use fewer workers")
        handles: dict[int, pq.ParquetFile] = {}
        epoch, offset = start.epoch, start.offset
        while epochs is None or epoch < epochs:
            base = 0
            for w, window in enumerate(self.windows(epoch, consumer, num_consumers)):
                size = sum(len(s) for s in window)
                if offset >= base + size:
                    base += size
                    continue
                rows = []
                for span in window:
                    unit = self.units[span.unit]
                    try:
                        if unit.file not in handles:
                            handles[unit.file] = pq.ParquetFile(self.files[unit.file])
                        table = handles[unit.file].read_row_group(unit.index, columns=self.columns)
                    except Exception as e:  # noqa: BLE001 - pyarrow raises OSError/ArrowInvalid variants
                        raise ValueError(f"{self.files[unit.file]}: row group {unit.index} is unreadable "
                                         f"({type(e).__name__}: {e})") from e
                    piece = table.slice(span.start, len(span)).to_pylist()
                    if self.name_rows:
                        first, name = self.first_rows[span.unit] + span.start, self.files[unit.file].name
                        for j, r in enumerate(piece):
                            r["__where__"] = f"{name} row {first + j}"
                    rows += piece
                order = self.window_order(epoch, consumer, w, size)
                for k in range(offset - base, size):
                    offset = base + k + 1
                    yield Position(epoch, offset), rows[order[k]]
                base += size
            epoch, offset = epoch + 1, 0


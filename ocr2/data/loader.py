"""The training data loader: sharded stream -> examples -> batches, in DataLoader workers, resumable.

Each DataLoader worker of each rank is one reader of `ShardedStream` (see stream.py) and builds whole batches
itself (packing needs to see consecutive samples), so the main process only moves finished batches. Every batch
travels with its worker's position *after* the batch and the worker's skip counts; the main process records them
for the batches actually handed to the trainer, so `state_dict()` is exact: batches prefetched but not yet used
are produced again after a resume, and no sample is trained on twice or dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ocr2.config import OCR2Config
from ocr2.data.collate import BatchBuilder
from ocr2.data.examples import ExampleEncoder
from ocr2.data.skips import BadSample, SkipCounter, merge_counts
from ocr2.data.sources import open_stream
from ocr2.data.stream import Position, ShardedStream
from ocr2.processing.text import Tokenizer

log = logging.getLogger("ocr2.data")

# Columns each target reads (in our names, see columns.py); the others stay on disk. `prompt` (a sample's own)
# is read where the dataset has it.
COLUMNS_FOR_TARGET = {"markdown": ("id", "image", "markdown", "prompt"),
                      "grounded": ("id", "image", "blocks", "relations", "width", "height", "prompt")}


@dataclass
class DataConfig:
    path: str  # a dataset directory written by ocr2-data (or any folder of parquet shards, see stream.py)
    # parquet: `path` is read by ShardedStream | hub: `path` is a Hub id (or local folder) streamed by datasets
    source: str = "parquet"
    # A foreign dataset's column names for ours, e.g. {"image": "png", "text": "md"} (see columns.py); None: ours.
    columns: dict[str, str | None] | None = None
    subset: str | None = None  # hub: the dataset's configuration name (load_dataset's `name`)
    shuffle_buffer: int = 1000  # hub: samples in datasets' shuffle buffer (parquet shuffles row groups instead)
    split: str = "train"
    # View recipes (ocr2/processing/views.py), cycled batch by batch when more than one (stage 1 trains on
    # single:768 and single:1024 views); stages 2 and 3 use the release's multi_crop.
    views: tuple[str, ...] = ("multi_crop",)
    batch_size: int = 1  # samples per batch; rows per batch when packing
    max_length: int = 8192  # token budget of one sample (and of one packed row)
    packing: bool = False
    target: str = "markdown"  # markdown | grounded (release-style boxes, needs blocks)
    prompt: str | None = None  # default: depends on target (see examples.py)
    num_workers: int = 2
    # Page-locked host buffers for the batches, so copies to a GPU can be asynchronous (True for CUDA runs).
    pin_memory: bool = False
    prefetch_factor: int = 2
    shuffle: bool = True
    seed: int = 0
    epochs: int | None = None  # None: repeat forever (step-based training)
    mix: int = 4  # row groups mixed together by one reader


class PageBatches(IterableDataset):
    """What one reader (rank x worker) yields: {"batch", "ids", "consumer", "position", "skips"}; a last item
    with batch None carries the final position and skip counts."""

    def __init__(self, stream: ShardedStream, encoder: ExampleEncoder, cfg: DataConfig, pad_id: int, rank: int,
                 world_size: int, starts: dict[int, Position] | None = None,
                 skips: dict[int, dict[str, int]] | None = None):
        self.stream, self.encoder, self.cfg, self.pad_id = stream, encoder, cfg, pad_id
        self.rank, self.world_size = rank, world_size
        self.starts, self.skips = dict(starts or {}), dict(skips or {})

    @property
    def readers_per_rank(self) -> int:
        return max(1, self.cfg.num_workers)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        consumer = self.rank * self.readers_per_rank + worker
        num_consumers = self.world_size * self.readers_per_rank
        start = self.starts.get(consumer, Position())
        skips = SkipCounter(self.skips.get(consumer))
        builder = BatchBuilder(self.cfg.batch_size, self.pad_id, self.cfg.packing, self.cfg.max_length)
        batch_index = 0  # picks the view recipe; stage 1 alternates sizes batch by batch
        recipes = self.encoder.recipes

        def recipe():
            return recipes[batch_index % len(recipes)]

        def emit(position: Position) -> dict[str, Any]:
            batch, ids = builder.build()
            return {"batch": batch, "ids": ids, "consumer": consumer, "position": position,
                    "skips": skips.counts()}

        before = start  # position before the current row
        for after, row in self.stream.iter_rows(consumer, num_consumers, start, self.cfg.epochs):
            try:
                example = self.encoder(row, recipe())
                if not builder.add(example):
                    # The batch is complete; this sample opens the next one. Resume point: before this row.
                    yield emit(before)
                    batch_index += 1
                    # Re-encode: the next batch may use another recipe (and thus another length).
                    example = self.encoder(row, recipe())
                    builder.add(example)
            except BadSample as e:
                skips.add(e.reason, str(row.get("id", "?")), e.detail)
            except Exception as e:  # noqa: BLE001 - any other per-sample failure: skip it, named, never the run
                skips.add("encode_error", str(row.get("id", "?")), f"{type(e).__name__}: {e}")
            if builder.full():
                yield emit(after)
                batch_index += 1
            before = after
        if len(builder):
            yield emit(before)
        else:
            # No batch left, but samples skipped after the last batch must still reach the main process's counts.
            yield {"batch": None, "ids": [], "consumer": consumer, "position": before, "skips": skips.counts()}
        log.info("reader %d/%d done: %s", consumer, num_consumers, skips.report())


class TrainLoader:
    """Batches for one rank, forever (or `cfg.epochs` epochs); `state_dict`/`load_state_dict` resume exactly,
    `skip_counts()` says how many samples were skipped and why."""

    def __init__(self, cfg: DataConfig, tokenizer: Tokenizer, model_config: OCR2Config, rank: int = 0,
                 world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.cfg, self.tokenizer, self.rank, self.world_size = cfg, tokenizer, rank, world_size
        self.encoder = ExampleEncoder(tokenizer, model_config, cfg.views, cfg.max_length, cfg.prompt, cfg.target)
        # Checks the columns (mapped by cfg.columns) before any worker starts.
        self.stream = open_stream(cfg, COLUMNS_FOR_TARGET[cfg.target], rank, world_size)
        self.positions: dict[int, Position] = {}
        self.skips: dict[int, dict[str, int]] = {}
        self.last_ids: list[str] = []  # sample ids of the batch last handed out (for logs and tests)

    @property
    def num_consumers(self) -> int:
        return self.world_size * max(1, self.cfg.num_workers)

    def _dataset(self) -> PageBatches:
        return PageBatches(self.stream, self.encoder, self.cfg, self.tokenizer.pad_id, self.rank, self.world_size,
                           self.positions, self.skips)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor | None]]:
        workers = self.cfg.num_workers
        loader = DataLoader(self._dataset(), batch_size=None, num_workers=workers,
                            prefetch_factor=self.cfg.prefetch_factor if workers else None,
                            persistent_workers=False, pin_memory=self.cfg.pin_memory)
        reported = 0
        for item in loader:
            consumer = item["consumer"]
            self.positions[consumer] = item["position"]
            self.skips[consumer] = item["skips"]
            self.last_ids = item["ids"]
            total = sum(sum(c.values()) for c in self.skips.values())
            if total > reported:  # one line per batch that brought new skips; details are in the worker log
                log.warning("rank %d data: %s", self.rank, self.report())
                reported = total
            if item["batch"] is not None:
                yield item["batch"]
        log.log(logging.WARNING if self.skip_counts() else logging.INFO, "rank %d data exhausted: %s", self.rank,
                self.report())

    # ------------------------------------------------------------------ accounting and resume
    def skip_counts(self) -> dict[str, int]:
        return merge_counts(*self.skips.values())

    def report(self) -> str:
        return SkipCounter(self.skip_counts()).report()

    def state_dict(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "num_workers": self.cfg.num_workers, "rank": self.rank,
                "seed": self.cfg.seed, "num_rows": self.stream.num_rows,
                "positions": {str(c): [p.epoch, p.offset] for c, p in self.positions.items()},
                "skips": {str(c): dict(s) for c, s in self.skips.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore positions saved by `state_dict` on the same rank; the reader layout must be unchanged."""
        saved = (state["world_size"], max(1, state["num_workers"]))
        now = (self.world_size, max(1, self.cfg.num_workers))
        if saved != now:
            raise ValueError(f"data state was saved with world_size x workers = {saved[0]} x {saved[1]}, now "
                             f"{now[0]} x {now[1]}: the readers' slices differ, so the position cannot be resumed "
                             "exactly; resume with the same layout")
        if state.get("num_rows", self.stream.num_rows) != self.stream.num_rows:
            raise ValueError(f"data state was saved for a dataset of {state['num_rows']} rows, this one has "
                             f"{self.stream.num_rows}")
        if state.get("rank", self.rank) != self.rank:
            raise ValueError(f"data state of rank {state['rank']} given to rank {self.rank}")
        self.positions = {int(c): Position(*p) for c, p in state["positions"].items()}
        self.skips = {int(c): dict(s) for c, s in state["skips"].items()}

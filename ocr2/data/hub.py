"""Training straight from a Hub dataset (`data.source=hub data.path=org/name`), streamed with `datasets`.

    datasets.load_dataset(path, name=subset, split=split, streaming=True)   # nothing is downloaded up front
      -> shuffle(seed, buffer_size)                                        # shards + a sample buffer
      -> datasets.distributed.split_dataset_by_node(rank, world_size)      # ranks: disjoint shards or examples
      -> iterated inside each DataLoader worker, where datasets gives every worker its own shards

`path` is whatever `load_dataset` opens (a Hub id, resolved through the local cache and `HF_HUB_OFFLINE`; a local
folder of parquet/json/csv files) or a `save_to_disk` folder (read with `load_from_disk`, streamed in shards).

Positions are (epoch, rows this reader has handed out), as for ShardedStream: the order is a pure function of
the seed and the epoch, so a resume replays it and drops the rows before the position (they are streamed again
but not decoded: image columns are read as bytes, and decoded only by the encoder). The workers of a rank share
the rank's shards, so use at most as many `data.num_workers` as the dataset has shards (datasets stops the extra
workers, with a warning).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Sequence

from ocr2.data.columns import WHERE
from ocr2.data.stream import Position

log = logging.getLogger("ocr2.data")


def _is_saved_to_disk(path: Path) -> bool:
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def open_streaming(path: str, split: str, subset: str | None = None):
    """A datasets IterableDataset of one split; a ValueError naming the source when it cannot be opened."""
    import datasets

    where = f"data.path={path} (data.source=hub, split {split!r})"
    try:
        if _is_saved_to_disk(Path(path)):
            ds = datasets.load_from_disk(path)
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise ValueError(f"no split {split!r}; it has {sorted(ds)}")
                ds = ds[split]
            # Several shards, so that the ranks and the workers of a rank each get their own.
            return ds.to_iterable_dataset(num_shards=max(1, min(len(ds), 64)))
        return datasets.load_dataset(path, name=subset, split=split, streaming=True)
    except Exception as e:  # noqa: BLE001 - datasets raises DatasetNotFoundError, FileNotFoundError, ValueError, ...
        raise ValueError(f"{where}: cannot open it with datasets ({type(e).__name__}: {e})") from e


def _undecoded(feature):
    """The same feature with images left as {"bytes", "path"} (the encoder decodes them, once)."""
    import datasets

    if isinstance(feature, datasets.Image):
        return datasets.Image(decode=False)
    if isinstance(feature, datasets.List) and isinstance(feature.feature, datasets.Image):
        return datasets.List(datasets.Image(decode=False))
    return None


class HubStream:
    def __init__(self, path: str, split: str = "train", columns: Sequence[str] | None = None,
                 subset: str | None = None, seed: int = 0, shuffle: bool = True, buffer_size: int = 1000,
                 rank: int = 0, world_size: int = 1):
        from datasets.distributed import split_dataset_by_node

        self.path, self.split = path, split
        ds = open_streaming(path, split, subset)
        if ds.features is not None:
            self.column_names = sorted(ds.features)
        else:  # e.g. JSON without a schema: the first row tells
            first = next(iter(ds), None)
            if first is None:
                raise ValueError(f"data.path={path} (data.source=hub, split {split!r}): the dataset holds no rows")
            self.column_names = sorted(first)
        keep = [c for c in columns if c in self.column_names] if columns else list(self.column_names)
        ds = ds.select_columns(keep)
        for name, feature in (ds.features or {}).items():
            plain = _undecoded(feature)
            if plain is not None:
                ds = ds.cast_column(name, plain)
        if shuffle:
            ds = ds.shuffle(seed=int(seed), buffer_size=int(buffer_size))
        self.dataset = split_dataset_by_node(ds, rank=rank, world_size=world_size)
        self.num_rows = None  # unknown for a stream; TrainLoader.state_dict stores None
        self.files = [path]  # named in error messages, as ShardedStream's files are

    def iter_rows(self, consumer: int = 0, num_consumers: int = 1, start: Position = Position(),
                  epochs: int | None = None) -> Iterator[tuple[Position, dict]]:
        """Rows of this reader from `start` on, each with the position after it (see ShardedStream.iter_rows)."""
        epoch, offset = start.epoch, start.offset
        while epochs is None or epoch < epochs:
            self.dataset.set_epoch(epoch)
            seen = 0
            for k, row in enumerate(self.dataset):
                seen = k + 1
                if k < offset:
                    continue
                row[WHERE] = f"{self.path} [{self.split}] reader {consumer}, epoch {epoch} row {k}"
                yield Position(epoch, k + 1), row
            if not seen:  # this worker was given no shards: end, or the DataLoader would wait on it forever
                log.warning("%s: reader %d of %d got no rows (more loader workers than the dataset has shards?)",
                            self.path, consumer, num_consumers)
                return
            epoch, offset = epoch + 1, 0

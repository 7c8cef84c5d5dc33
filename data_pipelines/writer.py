"""Write page samples as a Hugging Face dataset on disk: parquet shards per split, with the Image feature.

Layout (the Hub's, so `datasets.load_dataset(out_dir)` finds the splits by file name, and `ocr2.data` streams it):

    out_dir/data/train-00000-of-00004.parquet ...   rows of the ocr2.data.schema columns
    out_dir/data/validation-00000-of-00001.parquet
    out_dir/ocr2_dataset.json                        how it was built: command, config, counts, skips

Rows are written in row groups of `row_group_size` (the unit the loader shuffles and reads), so a shard is never
held in memory whole. Images are stored as encoded bytes: PNG (lossless) by default, or JPEG.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ocr2.data.schema import sample_features


def encode_image(image: Image.Image | dict | bytes, fmt: str = "png", quality: int = 92) -> dict[str, Any]:
    """{"bytes", "path"} as the datasets Image feature stores it. PNG uses a fast compression level: level 1 is
    several times faster than the default and only ~10% bigger on document pages."""
    if isinstance(image, dict):
        return {"bytes": image.get("bytes"), "path": image.get("path")}
    if isinstance(image, (bytes, bytearray)):
        return {"bytes": bytes(image), "path": None}
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=1)
    elif fmt in ("jpeg", "jpg"):
        image.convert("RGB").save(buf, format="JPEG", quality=quality)
    else:
        raise ValueError(f"unknown image format {fmt!r}: png or jpeg")
    return {"bytes": buf.getvalue(), "path": None}


class SplitWriter:
    """Streams the rows of one split into shards of at most `rows_per_shard` rows."""

    def __init__(self, out_dir: str | Path, split: str, rows_per_shard: int = 1000, row_group_size: int = 64):
        self.dir = Path(out_dir) / "data"
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob(f"{split}-*.parquet"):  # a rebuild must not mix with an older build's shards
            old.unlink()
        self.split, self.rows_per_shard, self.row_group_size = split, rows_per_shard, row_group_size
        self.features = sample_features()
        self.schema = self.features.arrow_schema  # carries the datasets feature metadata (Image, Value)
        self.shards: list[Path] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_shard = 0
        self._buffer: list[dict] = []

    def write(self, row: dict[str, Any]) -> None:
        """`row["image"]` must already be encoded (see `encode_image`)."""
        self._buffer.append(row)
        if len(self._buffer) >= self.row_group_size or self._in_shard + len(self._buffer) >= self.rows_per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            path = self.dir / f"{self.split}-{len(self.shards):05d}.parquet.tmp"
            self.shards.append(path)
            self._writer = pq.ParquetWriter(path, self.schema)
            self._in_shard = 0
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        self._writer.write_table(table, row_group_size=self.row_group_size)
        self._in_shard += len(self._buffer)
        self.rows += len(self._buffer)
        self._buffer = []
        if self._in_shard >= self.rows_per_shard:
            self._writer.close()
            self._writer = None

    def close(self) -> list[Path]:
        """Flush, close, and rename shards to the Hub's `<split>-<i>-of-<n>.parquet`."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        n = len(self.shards)
        final = []
        for i, tmp in enumerate(self.shards):
            path = self.dir / f"{self.split}-{i:05d}-of-{n:05d}.parquet"
            tmp.rename(path)
            final.append(path)
        self.shards = final
        return final


def write_build_info(out_dir: str | Path, info: dict[str, Any]) -> Path:
    path = Path(out_dir) / "ocr2_dataset.json"
    path.write_text(json.dumps(info, indent=2, ensure_ascii=False, default=str) + "\n")
    return path



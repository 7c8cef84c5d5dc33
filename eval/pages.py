"""Evaluation pages from an ocr2 dataset (ocr2-data synth / omnidocbench / folder / hf ...): image + ground truth.

The ground truth of each page is handed to the metrics as an OmniDocBench page entry (`layout_dets`, `extra.relation`,
`page_info.image_path`, `page_info.page_attribute`), so synthetic and real pages are scored by the same code.
Pages are streamed: a parquet shard is read a few rows at a time, and an image is decoded only when the page is
read (`EvalPage.image`), never kept. The official OmniDocBench layout (JSON + images folder) is read by
eval/official_layout.py into the same `EvalPage`s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import pyarrow.parquet as pq
from PIL import Image

from ocr2.data.examples import open_image
from ocr2.data.schema import sample_blocks, sample_relations
from ocr2.data.stream import find_parquet_files

SPLIT_PREFERENCE = ("test", "validation")  # the split a builder writes for evaluation, in this order
ROWS_PER_READ = 16


class EvalPage:
    """One page: `stem` (the prediction file name), `image` (decoded on each access when given as a loader),
    `markdown` (the GT markdown; None when the source has none), `gt_page` (OmniDocBench entry) and `size`
    (width, height; known without decoding where the source records it)."""

    def __init__(self, stem: str, image: Image.Image | Callable[[], Image.Image], markdown: str | None,
                 gt_page: dict, size: tuple[int, int] | None = None):
        self.stem, self.markdown, self.gt_page = stem, markdown, gt_page
        self._image = image
        self.size = size or (image.size if isinstance(image, Image.Image) else None)

    @property
    def image(self) -> Image.Image:
        return self._image if isinstance(self._image, Image.Image) else self._image()

    @property
    def attributes(self) -> dict:
        return (self.gt_page.get("page_info") or {}).get("page_attribute") or {}


def _dataset_splits(path: Path) -> list[str]:
    info = path / "ocr2_dataset.json"
    if info.is_file():
        try:
            return list((json.loads(info.read_text(encoding="utf-8")).get("splits") or {}))
        except (json.JSONDecodeError, AttributeError) as e:
            raise ValueError(f"{info}: not a dataset info file ({e})") from e
    found = set()
    for split in SPLIT_PREFERENCE + ("train",):
        try:
            find_parquet_files(path, split)
            found.add(split)
        except FileNotFoundError:
            continue
    return sorted(found)


def default_split(path: str | Path) -> str:
    """The split to evaluate when none is given: the one the dataset's builder wrote (ocr2_dataset.json
    `splits`) - `test` or else `validation` when it wrote several, the only one when it wrote one."""
    path = Path(path)
    if path.is_file():
        return "test"  # one parquet file: its split name does not matter (find_parquet_files reads it)
    splits = _dataset_splits(path)
    for split in SPLIT_PREFERENCE:
        if split in splits:
            return split
    if len(splits) == 1:
        return splits[0]
    raise ValueError(f"{path}: cannot tell which split to evaluate (splits: {splits or 'none found'}); "
                     f"set data.split")


def count_pages(path: str | Path, split: str) -> int:
    """Rows of a split, from the parquet footers (nothing decoded)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in find_parquet_files(path, split))


def _page(row: dict) -> EvalPage:
    stem = str(row["id"])
    attributes = {"language": row.get("lang")} if row.get("lang") not in (None, "", "unknown") else {}
    gt = {"layout_dets": sample_blocks(row), "extra": {"relation": sample_relations(row)},
          "page_info": {"image_path": f"{stem}.png", "width": row.get("width"), "height": row.get("height"),
                        "page_attribute": attributes}}
    size = (int(row["width"]), int(row["height"])) if row.get("width") and row.get("height") else None
    image = row["image"]
    return EvalPage(stem, lambda: open_image(image, stem), row.get("markdown") or "", gt, size)


def iter_pages(path: str | Path, split: str | None = None, limit: int | None = None) -> Iterator[EvalPage]:
    """The pages of one split (default: default_split), shard by shard, ROWS_PER_READ rows at a time."""
    split = split or default_split(path)
    n = 0
    for f in find_parquet_files(path, split):
        for batch in pq.ParquetFile(f).iter_batches(batch_size=ROWS_PER_READ):
            for row in batch.to_pylist():
                if limit is not None and n >= limit:
                    return
                yield _page(row)
                n += 1

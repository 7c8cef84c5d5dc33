"""Evaluation pages from an ocr2 dataset (ocr2-data synth / omnidocbench / folder): image + ground truth.

The ground truth of each page is handed to the metrics as an OmniDocBench page entry (`layout_dets`, `extra.relation`,
`page_info.image_path`), so synthetic and real pages are scored by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq
from PIL import Image

from ocr2.data.examples import open_image
from ocr2.data.schema import sample_blocks, sample_relations
from ocr2.data.stream import find_parquet_files


@dataclass
class EvalPage:
    stem: str
    image: Image.Image
    markdown: str
    gt_page: dict


def iter_pages(path: str | Path, split: str = "validation", limit: int | None = None) -> Iterator[EvalPage]:
    files = find_parquet_files(path, split)
    n = 0
    for f in files:
        table = pq.read_table(f)
        for row in table.to_pylist():
            if limit is not None and n >= limit:
                return
            stem = str(row["id"])
            gt = {"layout_dets": sample_blocks(row), "extra": {"relation": sample_relations(row)},
                  "page_info": {"image_path": f"{stem}.png", "width": row.get("width"), "height": row.get("height")}}
            yield EvalPage(stem, open_image(row["image"], stem), row.get("markdown") or "", gt)
            n += 1

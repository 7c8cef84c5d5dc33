"""Where `ocr2-eval` reads its pages: a dataset written by ocr2-data (parquet shards, one split) or the official
OmniDocBench release layout (JSON + images folder), told apart by what `data.path` holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from eval.official_layout import find_official_json, official_pages
from eval.pages import EvalPage, count_pages, default_split, iter_pages


@dataclass
class PageSource:
    layout: str  # "omnidocbench" (the official release layout) | "ocr2" (a dataset written by ocr2-data)
    path: str  # the dataset folder, or the release JSON
    split: str | None  # the parquet split read (None for the official layout)
    total: int  # pages that will be yielded
    pages: Iterator[EvalPage]

    def describe(self) -> dict:
        return {"layout": self.layout, "path": self.path, "split": self.split, "pages": self.total}


def open_source(path: str | Path, split: str | None = None, limit: int | None = None,
                images: str | Path | None = None) -> PageSource:
    """The pages of `path`: the official layout when it is (or holds) the release JSON, else an ocr2 dataset
    (`split` None: the split its builder wrote, eval/pages.default_split)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"data.path={path} does not exist")
    json_path = find_official_json(path)
    if json_path is not None:
        total, pages = official_pages(json_path, images, limit)
        return PageSource("omnidocbench", str(json_path), None, total, pages)
    split = split or default_split(path)
    total = count_pages(path, split)
    total = min(total, limit) if limit is not None else total
    return PageSource("ocr2", str(path), split, total, iter_pages(path, split, limit))

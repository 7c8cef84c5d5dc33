"""The official OmniDocBench release layout, read in place: `OmniDocBench.json` (a list of page entries) and an
`images/` folder holding each entry's `page_info.image_path` (the 1,355 pages of v1.5; the demo's 18 likewise).

`data.path` may be the release folder (its `OmniDocBench.json`, or its only top-level `*.json`) or the JSON
file itself; the images are looked for in `images/` beside the JSON unless `data.images` names the folder.
Pages stream in the JSON's order; an image is opened for its size only (the header) until it is read.
Reference for the layout: opendatalab/OmniDocBench (README, "Dataset"), Apache-2.0 code, research-use data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from PIL import Image

from eval.metrics import load_gt, page_stem
from eval.pages import EvalPage
from ocr2.data.examples import open_image

RELEASE_JSON = "OmniDocBench.json"


def find_official_json(path: str | Path) -> Path | None:
    """The release JSON that `path` names or holds; None when `path` is not in the official layout."""
    path = Path(path)
    if path.is_file():
        return path if path.suffix == ".json" else None
    if not path.is_dir():
        return None
    if (path / RELEASE_JSON).is_file():
        return path / RELEASE_JSON
    candidates = sorted(p for p in path.glob("*.json") if p.name != "ocr2_dataset.json")
    return candidates[0] if len(candidates) == 1 and (path / "images").is_dir() else None


def images_dir(json_path: Path, images: str | Path | None = None) -> Path:
    folder = Path(images) if images else json_path.parent / "images"
    if not folder.is_dir():
        raise FileNotFoundError(f"{json_path}: no images folder at {folder} (set data.images to the folder holding "
                                f"the page images)")
    return folder


def _size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError):
        return None  # read (and failed, naming the file) when the page is read


def official_pages(json_path: str | Path, images: str | Path | None = None,
                   limit: int | None = None) -> tuple[int, Iterator[EvalPage]]:
    """(number of pages, the pages in the JSON's order); a page whose image is missing fails when it comes up,
    naming the file. The JSON is read once (the ground truth is small; the images are what streaming saves)."""
    json_path = Path(json_path)
    folder = images_dir(json_path, images)
    gts = load_gt(json_path)
    gts = gts[:limit] if limit is not None else gts

    def pages() -> Iterator[EvalPage]:
        for i, gt in enumerate(gts):
            try:
                stem, name = page_stem(gt), Path(gt["page_info"]["image_path"]).name
            except (KeyError, TypeError) as e:
                raise ValueError(f"{json_path}: page {i} has no page_info.image_path") from e
            path = folder / name
            if not path.is_file():
                raise FileNotFoundError(f"{json_path}: page {i} ({stem}): no image {path}")
            yield EvalPage(stem, lambda p=path, s=stem: open_image(p, s), None, gt, _size(path))

    return len(gts), pages()

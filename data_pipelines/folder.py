"""`ocr2-data folder`: a folder of page images with their markdown beside them -> the page dataset schema.

`scan/p1.png` pairs with `scan/p1.md` (searched recursively). Such pages have no block annotations (`blocks` is
empty), so they train the markdown target, not the grounded one. The train/validation split is decided per page
by a hash of its relative path, so adding pages never moves existing ones between splits. Images that cannot be
decoded, and pages without markdown or with empty markdown, are skipped, counted and reported.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from data_pipelines.staging import require_pages, staged_dataset
from data_pipelines.writer import SplitWriter, encode_image, write_build_info
from ocr2.data.schema import make_sample
from ocr2.data.skips import SkipCounter
from ocr2.processing.image import ImageError, load_image

log = logging.getLogger("ocr2.data")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
_KEEP_BYTES = (".png", ".jpg", ".jpeg")  # formats stored as they are; others are re-encoded to PNG


def guess_language(text: str) -> str:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "unknown"
    cjk = sum("CJK" in unicodedata.name(c, "") for c in letters) / len(letters)
    return "zh" if cjk > 0.5 else "mixed" if cjk > 0.1 else "en"


def split_of(relative: str, validation_fraction: float) -> str:
    h = int.from_bytes(hashlib.blake2b(relative.encode(), digest_size=8).digest(), "big") / 2 ** 64
    return "validation" if h < validation_fraction else "train"


def folder_samples(root: str | Path, skips: SkipCounter | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(relative path, row) for every image with usable markdown beside it, in sorted path order."""
    skips = skips if skips is not None else SkipCounter()
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    for path in tqdm(images, desc="folder pages", unit="page"):
        rel = path.relative_to(root).as_posix()
        md_path = path.with_suffix(".md")
        if not md_path.is_file():
            skips.add("no_markdown", rel, f"{md_path}: no such file")
            continue
        raw = md_path.read_bytes()
        try:
            markdown = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            skips.add("bad_markdown", rel, f"{md_path}: not UTF-8 text ({e})")
            continue
        if "\x00" in markdown:  # binary junk that happens to decode: never ground truth
            skips.add("bad_markdown", rel, f"{md_path}: binary data (NUL bytes), not markdown")
            continue
        if not markdown:
            skips.add("empty_text", rel, f"{md_path} is empty")
            continue
        try:
            image = load_image(path)
        except ImageError as e:
            skips.add("bad_image", rel, str(e))
            continue
        stored = {"bytes": path.read_bytes(), "path": None} if path.suffix.lower() in _KEEP_BYTES \
            else encode_image(image, "png")
        yield rel, make_sample(rel, stored, markdown, [], [], source=f"folder:{root.name}",
                               lang=guess_language(markdown), width=image.width, height=image.height)


def build_folder(out_dir: str | Path, root: str | Path, validation_fraction: float = 0.05,
                 rows_per_shard: int = 1000, row_group_size: int = 64, command: str = "") -> dict[str, Any]:
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {validation_fraction}")
    skips = SkipCounter()
    with staged_dataset(out_dir, ("train", "validation")) as staging:
        writers = {s: SplitWriter(staging, s, rows_per_shard, row_group_size) for s in ("train", "validation")}
        for rel, row in folder_samples(root, skips):
            writers[split_of(rel, validation_fraction)].write(row)
        for w in writers.values():
            w.close()
        counts = {s: w.rows for s, w in writers.items()}
        require_pages(counts, f"folder --root {root}", skips.counts())
        info = {"builder": "folder", "command": command, "root": str(root), "splits": counts,
                "validation_fraction": validation_fraction, "skipped": skips.counts()}
        write_build_info(staging, info)
    log.info("wrote %s to %s; %s", counts, out_dir, skips.report())
    return info

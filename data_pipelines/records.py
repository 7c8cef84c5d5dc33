"""What the record-based builders (`jsonl`, `hf`, `pdf`) share: a record is either a page or the reason it is not.

A builder yields `Page`s and `Bad`s, each naming where it comes from (`manifest.jsonl line 7`, `train-00000.parquet
row 3`, `docs/a.pdf page 2`). `build_records` writes the pages and, for the bad ones, either stops at the first
(`strict`: the error names the file and the record) or skips and counts them by reason, the first few logged
with where they are, the totals in `ocr2_dataset.json` and on the command line - as the other builders do.

Splits: a page with a `split` goes there (`--split validation` builds a validation split from its own manifest in
a second run: the other splits of an existing dataset are kept; `ocr2-data hf` keeps the source's splits); a page
without one goes to train or validation by a hash of its `group` (its image path, or its PDF), so that a page never
moves between splits when records are added, and the pages of one document, or one image under several prompts,
never straddle train and validation.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from PIL import Image

from data_pipelines.folder import guess_language, split_of
from data_pipelines.staging import require_pages, staged_dataset
from data_pipelines.writer import SplitWriter, encode_image, write_build_info
from ocr2.data.schema import make_sample
from ocr2.data.skips import SkipCounter
from ocr2.processing.image import ImageError, load_image

log = logging.getLogger("ocr2.data")

KEEP_BYTES = (".png", ".jpg", ".jpeg")  # stored as they are; other formats are re-encoded to PNG


@dataclass
class Page:
    where: str
    group: str  # what decides the split when `split` is None (see the module docstring)
    row: dict[str, Any]
    split: str | None = None


@dataclass
class Bad:
    where: str
    reason: str  # a SkipCounter reason (ocr2/data/skips.py)
    detail: str


class RecordProblem(Exception):
    """Raised while reading one record; the builder turns it into a `Bad`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def image_from_file(path: Path) -> tuple[dict[str, Any], Image.Image]:
    """({"bytes", "path"} to store, decoded image) of an image file; RecordProblem when it is missing or bad."""
    if not path.is_file():
        raise RecordProblem("missing_image", f"{path}: no such image file")
    try:
        image = load_image(path)
    except ImageError as e:
        raise RecordProblem("bad_image", str(e)) from e
    stored = {"bytes": path.read_bytes(), "path": None} if path.suffix.lower() in KEEP_BYTES \
        else encode_image(image, "png")
    return stored, image


def image_from_value(value: Any, root: Path | None) -> tuple[dict[str, Any], Image.Image]:
    """The same for a dataset cell: datasets' Image struct {"bytes", "path"}, raw bytes, a PIL image or a path
    (relative to `root`)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise RecordProblem("bad_record", f"{len(value)} images in one record; a record is one page")
        value = value[0]
    if isinstance(value, dict):
        if value.get("bytes"):
            value = value["bytes"]
        elif value.get("path"):
            value = value["path"]
        else:
            raise RecordProblem("bad_image", "image cell has neither bytes nor a path")
    if isinstance(value, str):
        path = Path(value)
        return image_from_file(path if path.is_absolute() or root is None else root / path)
    if isinstance(value, (bytes, bytearray)):
        try:
            image = load_image(Image.open(io.BytesIO(value)))
        except Exception as e:  # noqa: BLE001 - Pillow raises UnidentifiedImageError, OSError, ...
            raise RecordProblem("bad_image", f"cannot decode image bytes ({type(e).__name__}: {e})") from e
        return {"bytes": bytes(value), "path": None}, image
    if isinstance(value, Image.Image):
        try:
            image = load_image(value)
        except ImageError as e:
            raise RecordProblem("bad_image", str(e)) from e
        return encode_image(image, "png"), image
    raise RecordProblem("bad_image" if value is None else "bad_record",
                        "no image" if value is None else f"image cell is {type(value).__name__}, not an image")


def page_row(id: str, stored: dict, image: Image.Image, markdown: Any, prompt: Any, source: str) -> dict[str, Any]:
    """A schema row; RecordProblem for a target that is not text or is empty, or a prompt that is not text."""
    if not isinstance(markdown, str):
        raise RecordProblem("bad_record", f"markdown is {type(markdown).__name__}, expected text")
    markdown = markdown.strip()
    if not markdown:
        raise RecordProblem("empty_text", "the markdown is empty")
    if "\x00" in markdown:
        raise RecordProblem("bad_markdown", "the markdown holds NUL bytes (binary data)")
    if prompt is not None and not isinstance(prompt, str):
        raise RecordProblem("bad_prompt", f"prompt is {type(prompt).__name__}, expected text")
    return make_sample(id, stored, markdown, [], [], source=source, lang=guess_language(markdown),
                       width=image.width, height=image.height, prompt=prompt or None)


def check_fraction(validation_fraction: float) -> None:
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {validation_fraction}")


def build_records(out_dir: str | Path, records: Iterable[Page | Bad], what: str, info: dict[str, Any],
                  splits: Iterable[str] = ("train", "validation"), validation_fraction: float = 0.05,
                  strict: bool = False, rows_per_shard: int = 1000, row_group_size: int = 64) -> dict[str, Any]:
    """Write `records` as a dataset (staged: the existing one is kept until this succeeds) with the `splits`
    the pages go to (those rebuilt; others of an existing dataset are kept); `what` names the input in errors.
    Returns the build info (also written to ocr2_dataset.json)."""
    check_fraction(validation_fraction)
    splits = tuple(dict.fromkeys(splits))
    skips = SkipCounter(log_first=10)  # a conversion is read by a person: show more of each kind than a run does
    seen: dict[str, str] = {}
    with staged_dataset(out_dir, splits) as staging:
        writers = {s: SplitWriter(staging, s, rows_per_shard, row_group_size) for s in splits}
        for record in records:
            if isinstance(record, Page) and record.row["id"] in seen:
                record = Bad(record.where, "bad_record",
                             f"duplicate id {record.row['id']!r} (first at {seen[record.row['id']]})")
            if isinstance(record, Bad):
                if strict:
                    raise ValueError(f"{record.where}: {record.detail} ({record.reason}; without --strict such "
                                     f"records are skipped and counted)")
                skips.add(record.reason, record.where, record.detail)
                continue
            seen[record.row["id"]] = record.where
            writers[record.split or split_of(record.group, validation_fraction)].write(record.row)
        for w in writers.values():
            w.close()
        counts = {s: w.rows for s, w in writers.items()}
        require_pages(counts, what, skips.counts())
        info = {**info, "splits": counts, "validation_fraction": validation_fraction, "skipped": skips.counts(),
                "strict": strict}
        write_build_info(staging, info)
    log.info("wrote %s to %s; %s", counts, out_dir, skips.report())
    return info

"""Small page datasets for the data tests: real parquet shards (written by data_pipelines.writer) in tmp_path."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from data_pipelines.writer import SplitWriter, encode_image
from ocr2.data.schema import make_sample


def page_image(i: int, size: tuple[int, int] = (96, 128)) -> Image.Image:
    image = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(image).text((4, 4), f"page {i}", fill=(0, 0, 0))
    return image


def page_row(i: int, markdown: str | None = None, image: Image.Image | bytes | None = None, prefix: str = "p",
             size: tuple[int, int] = (96, 128)) -> dict:
    image = page_image(i, size) if image is None else image
    w, h = size if isinstance(image, bytes) else image.size
    row = make_sample(f"{prefix}{i:04d}", image, f"# Page {i}\n\nText of page {i}." if markdown is None else markdown,
                      [], [], source="test", lang="en", width=w, height=h)
    row["image"] = encode_image(image)
    return row


def write_split(out: Path, split: str, rows: list[dict], rows_per_shard: int = 7, row_group_size: int = 3) -> Path:
    """Uneven shards and row groups on purpose: sharding must not depend on them lining up."""
    writer = SplitWriter(out, split, rows_per_shard, row_group_size)
    for row in rows:
        writer.write(row)
    writer.close()
    return out


def write_pages(out: Path, n: int, split: str = "train", **kwargs) -> Path:
    return write_split(out, split, [page_row(i) for i in range(n)], **kwargs)

"""`ocr2-data omnidocbench`: an OmniDocBench JSON + image folder -> the page dataset schema.

Blocks and relations are copied from the benchmark's `layout_dets` and `extra.relation` unchanged (so the
evaluator sees exactly the benchmark's ground truth); the markdown is rendered from them by
`ocr2.data.markdown.blocks_to_markdown`, which reproduces the benchmark's own `gt_markdown` files (tested on the
18 demo pages), or read from `--markdown-dir` when given. Images keep their original bytes (no re-encoding).
Pages whose image is missing or unreadable are skipped, counted and reported.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from data_pipelines.staging import require_pages, staged_dataset
from data_pipelines.writer import SplitWriter, write_build_info
from ocr2.data.markdown import blocks_to_markdown
from ocr2.data.schema import make_sample
from ocr2.data.skips import SkipCounter
from ocr2.processing.image import ImageError, load_image

log = logging.getLogger("ocr2.data")

LANGUAGES = {"english": "en", "simplified_chinese": "zh", "en_ch_mixed": "mixed"}


def load_pages(json_path: str | Path) -> list[dict]:
    path = Path(json_path)
    try:
        pages = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read OmniDocBench JSON ({e})") from e
    if not isinstance(pages, list) or not all(isinstance(p, dict) and "page_info" in p for p in pages):
        raise ValueError(f"{path}: expected a list of pages with 'page_info' and 'layout_dets' (OmniDocBench)")
    return pages


def omnidocbench_samples(json_path: str | Path, image_dir: str | Path, markdown_dir: str | Path | None = None,
                         skips: SkipCounter | None = None) -> Iterator[dict[str, Any]]:
    """Rows of the schema, image as `{"bytes", "path"}` (original file bytes); bad pages counted in `skips`."""
    skips = skips if skips is not None else SkipCounter()
    image_dir = Path(image_dir)
    for page in load_pages(json_path):
        info = page["page_info"]
        name = info.get("image_path", "")
        stem = Path(name).stem
        path = image_dir / name
        try:
            image = load_image(path)
        except ImageError as e:
            skips.add("bad_image", stem, str(e))
            continue
        blocks = page.get("layout_dets") or []
        relations = (page.get("extra") or {}).get("relation") or []
        if markdown_dir is not None:
            md_path = Path(markdown_dir) / f"{stem}.md"
            if not md_path.is_file():
                skips.add("no_markdown", stem, f"{md_path}: no such file")
                continue
            markdown = md_path.read_text(encoding="utf-8")
        else:
            markdown = blocks_to_markdown(blocks, relations)
        lang = LANGUAGES.get((info.get("page_attribute") or {}).get("language", ""), "unknown")
        yield make_sample(stem, {"bytes": path.read_bytes(), "path": None}, markdown, blocks, relations,
                          source="omnidocbench", lang=lang, width=image.width, height=image.height)


def build_omnidocbench(out_dir: str | Path, json_path: str | Path, image_dir: str | Path,
                       markdown_dir: str | Path | None = None, split: str = "test", rows_per_shard: int = 1000,
                       row_group_size: int = 64, command: str = "") -> dict[str, Any]:
    skips = SkipCounter()
    total = len(load_pages(json_path))
    with staged_dataset(out_dir, [split]) as staging:
        writer = SplitWriter(staging, split, rows_per_shard, row_group_size)
        for row in tqdm(omnidocbench_samples(json_path, image_dir, markdown_dir, skips), total=total,
                        desc="omnidocbench pages", unit="page"):
            writer.write(row)
        writer.close()
        require_pages({split: writer.rows}, f"omnidocbench --json {json_path} --images {image_dir}", skips.counts())
        info = {"builder": "omnidocbench", "command": command, "json": str(json_path), "images": str(image_dir),
                "markdown": "from blocks" if markdown_dir is None else str(markdown_dir),
                "splits": {split: writer.rows}, "skipped": skips.counts()}
        write_build_info(staging, info)
    log.info("wrote %d pages to %s; %s", writer.rows, out_dir, skips.report())
    return info

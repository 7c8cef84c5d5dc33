"""A tiny folder in the official OmniDocBench release layout (`OmniDocBench.json` + `images/`), built from the
adversarial cases' GT pages (tests/omnidocbench_cases.py) with varied page attributes and image sizes."""

from __future__ import annotations

import json
from pathlib import Path

from omnidocbench_cases import cases
from PIL import Image, ImageDraw

TYPES = ("research_report", "book", "exam_paper")
LAYOUTS = ("single_column", "double_column")
SIZES = ((640, 480), (320, 900), (800, 800))


def write_official_layout(folder: str | Path, n: int = 6, image_ext: str = ".jpg") -> dict[str, str]:
    """n pages (n <= number of cases) -> {stem: the page's GT-like prediction markdown}; page k gets page type
    TYPES[k % 3], layout LAYOUTS[k % 2], a fuzzy_scan issue on even pages and size SIZES[k % 3]."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    built = list(cases().items())[:n]
    pages, markdown = [], {}
    for k, (name, (gt, md)) in enumerate(built):
        gt = json.loads(json.dumps(gt))
        gt["page_info"]["image_path"] = f"{name}{image_ext}"
        gt["page_info"]["page_attribute"] = {"data_source": TYPES[k % 3], "language": gt["page_info"][
            "page_attribute"]["language"], "layout": LAYOUTS[k % 2],
            "special_issue": ["fuzzy_scan"] if k % 2 == 0 else []}
        image = Image.new("RGB", SIZES[k % 3], "white")
        ImageDraw.Draw(image).text((10, 10), name, fill="black")
        image.save(folder / "images" / f"{name}{image_ext}")
        pages.append(gt)
        markdown[name] = md
    (folder / "OmniDocBench.json").write_text(json.dumps(pages, ensure_ascii=False), encoding="utf-8")
    return markdown

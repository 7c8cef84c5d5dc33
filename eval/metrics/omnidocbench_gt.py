"""Ground-truth blocks of one OmniDocBench page, grouped the way the end-to-end evaluation uses them.

Reference: OmniDocBench's end-to-end evaluation (`dataset/end2end_dataset.py`) and its ground-truth JSON
schema (`OmniDocBench.json`: `layout_dets` with `category_type`, `text`/`latex`/`html`, `order`, `ignore`;
`extra.relation`).

- Text categories take part in matching; the ones listed in `IGNORED_TEXT_CATEGORIES` are matched (so a
  predicted page header pairs with the GT header instead of stealing a body paragraph) but then left out of
  every score. Blocks flagged `ignore: true` are treated the same way.
- `equation_isolated` blocks are display formulas, `table` blocks are tables (scored on their `html`).
- Blocks of other categories (`figure`, `abandon`, span-level ones) carry no scored content and are skipped.
- Blocks linked by a `truncated` relation (one paragraph cut by a column or page break) are merged into one
  block, text concatenated in reading order, before matching - the benchmark does the same.
- A missing `order` counts as 0, as in the benchmark; 0 is then left out of the reading-order sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from ocr2.data.markdown import truncated_groups

TEXT_CATEGORIES = (
    "text_block", "title", "code_txt", "code_txt_caption", "reference", "equation_caption", "figure_caption",
    "figure_footnote", "table_caption", "table_footnote", "code_algorithm", "code_algorithm_caption", "header",
    "footer", "page_footnote", "page_number",
)
# The categories OmniDocBench leaves out of the text score (its `dataset/end2end_dataset.py`, ~L333).
IGNORED_TEXT_CATEGORIES = frozenset({
    "figure_caption", "figure_footnote", "table_caption", "table_footnote", "code_algorithm",
    "code_algorithm_caption", "header", "footer", "page_footnote", "page_number", "equation_caption",
})
FORMULA_CATEGORY = "equation_isolated"
TABLE_CATEGORY = "table"


@dataclass(frozen=True)
class GTBlock:
    kind: str  # "text" | "formula" | "table"
    category: str
    content: str  # text, LaTeX or HTML
    order: int  # reading-order index (0 when the annotation has none)
    orders: tuple[int, ...]  # every order merged into this block (truncated paragraphs), for reading order
    ignored: bool  # matched but not scored


def page_stem(gt_page: dict) -> str:
    """The prediction file stem of a page: its image name without extension (`<image stem>.md`)."""
    return Path(gt_page["page_info"]["image_path"]).stem


def _order(block: dict) -> int:
    return int(block.get("order") or 0)


def _merge_truncated(dets: list[dict], relations: list[dict]) -> list[dict]:
    """Union the blocks joined by `truncated` relations; each union becomes one block placed at its first part."""
    merged = []
    for parts in truncated_groups(dets, relations):
        if len(parts) == 1:
            merged.append(parts[0])
            continue
        parts = sorted(parts, key=_order)
        first = dict(parts[0])
        first["text"] = "".join(p.get("text") or "" for p in parts)
        first["_orders"] = tuple(_order(p) for p in parts)
        merged.append(first)
    return merged


def gt_blocks(gt_page: dict) -> list[GTBlock]:
    """Scored and matchable GT blocks of one page, sorted by reading order (stable for equal orders)."""
    dets = _merge_truncated(gt_page.get("layout_dets", []), (gt_page.get("extra") or {}).get("relation", []))
    out = []
    for d in dets:
        cat = d.get("category_type")
        order = _order(d)
        orders = d.get("_orders", (order,))
        flagged = bool(d.get("ignore")) and str(d.get("ignore")).lower() != "false"
        if cat in TEXT_CATEGORIES and d.get("text"):
            out.append(GTBlock("text", cat, d["text"], order, orders, flagged or cat in IGNORED_TEXT_CATEGORIES))
        elif cat == FORMULA_CATEGORY and d.get("latex"):
            out.append(GTBlock("formula", cat, d["latex"], order, orders, flagged))
        elif cat == TABLE_CATEGORY and d.get("html"):
            out.append(GTBlock("table", cat, d["html"], order, orders, flagged))
    return sorted(out, key=lambda b: b.order)

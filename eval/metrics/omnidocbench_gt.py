"""Ground-truth items of one OmniDocBench page, gathered the way the official end-to-end evaluator gathers them.

Reference (Apache-2.0; our own code): OmniDocBench @ 7bd6c2e `dataset/end2end_dataset.py`
(`get_page_elements`, `get_sorted_text_list`) and `utils/match_quick.py::split_gt_equation_arrays`; the JSON
schema of `OmniDocBench.json` (`layout_dets` with `category_type`, `text`/`latex`/`html`, `order`, `attribute`;
`extra.relation`).

- Blocks linked by `truncated` relations (a paragraph cut by a column or page break) become one block: texts
  concatenated in reading order, category and order of the first part. The benchmark collects the parts per
  relation, so in a chain A->B, B->C the middle part is listed - and its text included - twice; we follow it
  (it is how the benchmark's GT reads), see docs/omnidocbench_agreement.md.
- Text categories and `equation_isolated` form the matched mix, tables are matched apart; both are sorted by
  `order` (a missing order counts as 0), stably, in the benchmark's category order.
- A display formula that is a single-column `array` is split into one formula per row (order 7 -> 7.1, 7.2..).
- The `ignore` flag of a block is not used by the benchmark's end-to-end evaluation, so not here either; the
  categories in `IGNORED_TEXT_CATEGORIES` are matched (to take their predictions out of the pool) but not scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

TEXT_CATEGORIES = (
    "text_block", "title", "code_txt", "code_txt_caption", "reference", "equation_caption", "figure_caption",
    "figure_footnote", "table_caption", "table_footnote", "code_algorithm", "code_algorithm_caption", "header",
    "footer", "page_footnote", "page_number",
)
# The categories OmniDocBench matches but leaves out of the text and reading-order scores.
IGNORED_TEXT_CATEGORIES = frozenset({
    "figure_caption", "figure_footnote", "table_caption", "table_footnote", "code_algorithm",
    "code_algorithm_caption", "header", "footer", "page_footnote", "page_number", "equation_caption",
})
FORMULA_CATEGORY = "equation_isolated"
TABLE_CATEGORY = "table"
_ARRAY = re.compile(r"\\begin\{array\}\{(?P<spec>[^}]*)\}(?P<body>.*?)\\end\{array\}", re.DOTALL)


@dataclass(frozen=True)
class GTBlock:
    kind: str  # "text" | "formula" | "table"
    category: str
    content: str  # text, LaTeX or HTML
    order: float | None  # reading-order index as annotated (None when missing)
    attribute: dict = field(default_factory=dict, compare=False)
    latex: str = ""  # a table's LaTeX form (the GT a LaTeX prediction is matched with); "" otherwise

    @property
    def ignored(self) -> bool:
        return self.category in IGNORED_TEXT_CATEGORIES


def page_stem(gt_page: dict) -> str:
    """The prediction file stem of a page: its image name without extension (`<image stem>.md`)."""
    return Path(gt_page["page_info"]["image_path"]).stem


def _sort_key(block: dict):
    return block.get("order") or 0


def _truncated_merges(dets: list[dict], relations: list[dict]) -> tuple[list[dict], list[dict]]:
    """(blocks outside any truncation, one merged block per truncation list), as the benchmark builds them."""
    lists: list[list] = []
    in_relation: dict = {}
    for rel in relations:
        if rel.get("relation_type") != "truncated":
            continue
        src, tgt = rel["source_anno_id"], rel["target_anno_id"]
        in_relation[src] = in_relation[tgt] = None
        joined = False
        for ids in lists:  # every list touching the relation grows by both ends (duplicates included)
            if src in ids or tgt in ids:
                ids += [src, tgt]
                joined = True
        if not joined:
            lists.append([src, tgt])
    alone = []
    for d in dets:
        if d.get("anno_id") in in_relation:
            in_relation[d["anno_id"]] = d
        else:
            alone.append(d)
    merged = []
    for ids in lists:
        parts = sorted((in_relation[i] for i in ids if in_relation[i] is not None), key=lambda p: p["order"])
        if parts:
            merged.append({"category_type": parts[0]["category_type"], "order": parts[0]["order"],
                           "text": "".join(p.get("text") or "" for p in parts),
                           "attribute": parts[0].get("attribute") or {}})
    return alone, merged


def _block(d: dict) -> GTBlock:
    cat = d["category_type"]
    kind = "formula" if cat == FORMULA_CATEGORY else "table" if cat == TABLE_CATEGORY else "text"
    key = {"text": "text", "formula": "latex", "table": "html"}[kind]
    latex = str(d.get("latex") or "") if kind == "table" else ""
    return GTBlock(kind, cat, str(d.get(key) or ""), d.get("order"), d.get("attribute") or {}, latex)


def single_column_array_rows(latex: str) -> list[tuple[str, int]] | None:
    """The rows of a single-column `array` in a formula, each with its offset in `latex`; None for any other
    formula (matrices and multi-column arrays stay whole)."""
    m = _ARRAY.search(latex) if "\\begin{array" in latex else None
    if m is None or re.sub(r"@{[^}]*}|!{[^}]*}", "", re.sub(r"\s+|\|", "", m.group("spec"))) not in ("l", "c", "r"):
        return None
    body, rows, cursor = m.group("body"), [], 0
    for row in (r.strip() for r in re.split(r"\\\\", m.group("body"))):
        if row:
            at = body.find(row, cursor)
            at = cursor if at < 0 else at
            cursor = at + len(row)
            rows.append((row, m.start("body") + at))
    return rows


def _split_array(b: GTBlock) -> list[GTBlock]:
    """A single-column `array` display formula as one formula per row, orders base + k/10."""
    rows = single_column_array_rows(b.content)
    if rows is None:
        return [b]
    base = float(b.order or 0)
    return [GTBlock(b.kind, b.category, f"\\[{r}\\]", round(base + k / 10, 1), b.attribute)
            for k, (r, _) in enumerate(rows, start=1)]


def gt_page_items(gt_page: dict) -> tuple[list[GTBlock], list[GTBlock]]:
    """(text and display-formula blocks in matching order, table blocks by order) of one page."""
    alone, merged = _truncated_merges(gt_page.get("layout_dets", []), (gt_page.get("extra") or {}).get("relation", []))
    by_category: dict[str, list[dict]] = {}
    for d in alone + merged:  # merged blocks come after the plain ones of their category
        by_category.setdefault(d.get("category_type"), []).append(d)
    mix = [d for cat in (*TEXT_CATEGORIES, FORMULA_CATEGORY) for d in by_category.get(cat, [])]
    blocks = [_block(d) for d in sorted(mix, key=_sort_key)]
    tables = [_block(d) for d in sorted(by_category.get(TABLE_CATEGORY, []), key=_sort_key)]
    return [s for b in blocks for s in (_split_array(b) if b.kind == "formula" else [b])], tables


def gt_blocks(gt_page: dict) -> list[GTBlock]:
    """Every matched GT block of a page: the text/formula mix, then the tables."""
    mix, tables = gt_page_items(gt_page)
    return mix + tables

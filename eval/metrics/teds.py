"""Tree-Edit-Distance-based Similarity (TEDS) for tables, and its structure-only variant TEDS-S.

Reference (Apache-2.0; our own code): OmniDocBench @ 7bd6c2e `metrics/table_metric.py` (PubTabNet's TEDS). Both
tables are first normalised (table_normalize.py), then parsed with lxml into trees of every element under
`<table>`; a `td` is a leaf whose content is its characters plus a token per inline tag (`<b>`, `</b>`, ...).
APTED computes the tree edit distance: insert/delete cost 1; rename cost 1 if tag, colspan or rowspan differ,
else for cells the normalised Levenshtein distance of their token lists (0 when both are empty).
`TEDS = 1 - distance / max(size_pred, size_gt)` where a size counts the elements *below* `<table>` - inline tags
in cells included, the table itself not. TEDS-S compares structure only (cell content ignored).
A table that fails to parse, or a span that is not an integer, scores 0, as in the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lxml.html
from apted import APTED, Config
from lxml import etree

from .edit_distance import normalized_edit_distance
from .table_normalize import normalize_table_html

_PARSER = lxml.html.HTMLParser(remove_comments=True, encoding="utf-8")


@dataclass
class TableNode:
    tag: str
    colspan: int | None = None
    rowspan: int | None = None
    content: list[str] = field(default_factory=list)  # a cell's tokens
    children: list["TableNode"] = field(default_factory=list)


def _cell_tokens(el) -> list[str]:
    """Characters and inline-tag tokens of a cell's content (its own tags excluded); tails of inner tags count."""
    tokens = list(el.text or "")
    for child in el:
        tokens.append(f"<{child.tag}>")
        tokens += _cell_tokens(child)
        tokens.append(f"</{child.tag}>")
        if child.tag != "td":  # the benchmark skips the tail of a cell nested in a cell
            tokens += list(child.tail or "")
    return tokens


def _tree(el, structure_only: bool) -> TableNode:
    if el.tag == "td":
        content = [] if structure_only else _cell_tokens(el)
        return TableNode("td", int(el.get("colspan", "1")), int(el.get("rowspan", "1")), content)
    return TableNode(el.tag, children=[_tree(c, structure_only) for c in el])


def parse_table(normalized: str):
    """The `<table>` element of a normalised table string, or None."""
    if not normalized:
        return None
    try:
        tables = lxml.html.fromstring(normalized, parser=_PARSER).xpath("body/table")
    except (etree.ParserError, ValueError):
        return None
    return tables[0] if tables else None


class _TedsConfig(Config):
    def rename(self, a: TableNode, b: TableNode) -> float:
        if a.tag != b.tag or a.colspan != b.colspan or a.rowspan != b.rowspan:
            return 1.0
        if a.tag == "td" and (a.content or b.content):
            return normalized_edit_distance(a.content, b.content)
        return 0.0

    def children(self, node: TableNode) -> list[TableNode]:
        return node.children


def teds_normalized(pred: str, gt: str, structure_only: bool = False) -> float:
    """TEDS between two already normalised table strings (normalize_table_html), in [0, 1]."""
    pred_table, gt_table = parse_table(pred), parse_table(gt)
    if pred_table is None or gt_table is None:
        return 0.0
    try:
        pred_tree, gt_tree = _tree(pred_table, structure_only), _tree(gt_table, structure_only)
    except ValueError:  # a colspan/rowspan that is not an integer
        return 0.0
    size = max(len(pred_table.xpath(".//*")), len(gt_table.xpath(".//*")))
    if size == 0:
        return 0.0
    distance = APTED(pred_tree, gt_tree, _TedsConfig()).compute_edit_distance()
    return 1.0 - float(distance) / size


def teds(pred_html: str, gt_html: str, structure_only: bool = False) -> float:
    """TEDS (or TEDS-S with `structure_only=True`) between two HTML tables, in [0, 1]; 1 = identical."""
    return teds_normalized(normalize_table_html(pred_html), normalize_table_html(gt_html), structure_only)

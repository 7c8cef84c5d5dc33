"""Tree-Edit-Distance-based Similarity (TEDS) for tables, and its structure-only variant TEDS-S.

Reference: OmniDocBench's table TEDS (`metrics/table_metric.py`, itself
PubTabNet's metric): parse the HTML with lxml into a tree, compute the tree edit distance with APTED where
inserting or deleting a node costs 1 and renaming costs 1 if tag, colspan or rowspan differ, else (for cells)
the normalised Levenshtein distance of the cell contents; `TEDS = 1 - distance / max(nodes_pred, nodes_gt)`.
TEDS-S is the same with cell contents ignored. The tree edit distance comes from the `apted` package.

Normalisation (ours, applied to both sides so it only removes markup noise):
- `th` is treated as `td`; `thead`/`tbody`/`tfoot` wrappers are dropped, so the tree is table -> tr -> td;
- a cell's content is its text (inline tags such as `<b>`/`<sup>` dropped) with inline LaTeX turned into
  unicode and all whitespace removed, compared character by character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import lxml.html
from apted import APTED, Config
from lxml import etree

from .edit_distance import normalized_edit_distance
from .normalize import inline_latex_to_unicode

_WS = re.compile(r"\s+")


@dataclass
class TableNode:
    tag: str  # "table" | "tr" | "td"
    colspan: int = 1
    rowspan: int = 1
    content: str = ""
    children: list["TableNode"] = field(default_factory=list)

    def size(self) -> int:
        return 1 + sum(c.size() for c in self.children)


def _span(el, name: str) -> int:
    try:
        return max(1, int(str(el.get(name, "1")).strip() or 1))
    except ValueError:
        return 1


def _owning_table(el):
    p = el.getparent()
    while p is not None and p.tag != "table":
        p = p.getparent()
    return p


def html_to_tree(html: str) -> TableNode | None:
    """The first `<table>` in `html` as a table -> tr -> td tree; None when there is no parsable table."""
    if not html or "<" not in html:
        return None
    try:
        root = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return None
    table = root if root.tag == "table" else next(root.iter("table"), None)
    if table is None:
        return None
    tree = TableNode("table")
    for tr in table.iter("tr"):
        if _owning_table(tr) is not table:  # rows of a nested table belong to that table's cell text
            continue
        row = TableNode("tr")
        for cell in tr:
            if cell.tag in ("td", "th"):
                text = _WS.sub("", inline_latex_to_unicode(cell.text_content()))
                row.children.append(TableNode("td", _span(cell, "colspan"), _span(cell, "rowspan"), text))
        tree.children.append(row)
    return tree


class _TedsConfig(Config):
    def __init__(self, structure_only: bool):
        self.structure_only = structure_only

    def rename(self, a: TableNode, b: TableNode) -> float:
        if a.tag != b.tag or a.colspan != b.colspan or a.rowspan != b.rowspan:
            return 1.0
        if a.tag == "td" and not self.structure_only:
            return normalized_edit_distance(a.content, b.content)
        return 0.0

    def children(self, node: TableNode) -> list[TableNode]:
        return node.children


def tree_teds(pred: TableNode | None, gt: TableNode | None, structure_only: bool = False) -> float:
    """TEDS between two parsed tables; a missing or unparsable side scores 0 (1 when both are missing)."""
    if pred is None and gt is None:
        return 1.0
    if pred is None or gt is None:
        return 0.0
    distance = APTED(pred, gt, _TedsConfig(structure_only)).compute_edit_distance()
    return 1.0 - float(distance) / max(pred.size(), gt.size())


def teds(pred_html: str, gt_html: str, structure_only: bool = False) -> float:
    """TEDS (or TEDS-S with `structure_only=True`) between two HTML tables, in [0, 1]; 1 = identical."""
    return tree_teds(html_to_tree(pred_html), html_to_tree(gt_html), structure_only)

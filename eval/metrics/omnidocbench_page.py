"""OmniDocBench v1.5 end-to-end figures of one page: text, display formulas, reading order, tables.

Reference (Apache-2.0; our own code): OmniDocBench @ 7bd6c2e `dataset/end2end_dataset.py`
(`process_get_matched_elements`, `get_order_paired`) and `metrics/cal_metric.py` (Edit_dist, TEDS). Per page:

1. tables: when the page has GT tables, they are paired with the predicted HTML tables (and converted pipe
   tables) one-to-one by a Hungarian assignment on the edit ratio of the raw markup; a GT table without a
   partner scores TEDS 0; a predicted table left over is read cell by cell into text items. If the prediction
   has more LaTeX than HTML tables, every GT table scores 0 (the benchmark needs latexml and blanks them).
   Predicted tables on a page without GT tables are ignored;
2. the other items are matched with quick_match (matching.py) - inline formulas last, as the benchmark orders
   them - under a 30 s limit, after which the simple one-to-one match is used (as the benchmark does);
3. each pair is scored by its GT category (the most common non-ignored one in a merged pair): text pairs as
   `(edit, max(len))` on normalised strings; display formulas likewise on normalised LaTeX - unless the
   prediction is text, then the formula is rendered to unicode and scored as text (v1.5 hybrid matching);
4. reading order over the text pairs: the GT orders of the matched blocks, read in prediction order, against
   all their orders sorted (a truncated paragraph contributes its first part's order only).

`index_view="official"` reproduces a bug of the official code (documented in docs/omnidocbench_agreement.md):
it drops empty items from the line lists but not from the item lists, then reads a pair's prediction category
and position at the shifted index - so a display formula matched to text can be scored as a formula, and vice
versa. The default `"faithful"` reads the item that was matched.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .edit_distance import edit_and_upper, pairs_ratio
from .markdown_blocks import PredBlock, split_markdown
from .matching import Match, quick_match, simple_match
from .normalize import clean_string, latex_to_unicode, normalize_formula, normalize_text
from .reading_order import reading_order_edit
from .omnidocbench_gt import (
    IGNORED_TEXT_CATEGORIES, TEXT_CATEGORIES, GTBlock, gt_page_items, single_column_array_rows,
)
from .table_normalize import normalize_table_html, table_cell_texts
from .teds import teds_normalized
from .time_limit import StepTimeout, time_limit

MATCH_TIME_LIMIT_S = 30.0
FORMULA_PRED_CATEGORIES = ("equation_inline", "equation_isolated", "")


@dataclass(frozen=True)
class _Items:
    """A filtered item list with the lookups of one index view (see the module docstring)."""
    norm: list[str]
    raw: list[str]
    category: list[str]
    position: list  # GT: order; prediction: character offset


def _norm_pred(p: PredBlock) -> str:
    return normalize_formula(p.content) if p.kind == "formula" else normalize_text(p.content)


def _norm_gt(g: GTBlock) -> str:
    return normalize_formula(g.content) if g.kind == "formula" else normalize_text(g.content)


def _views(items: list, norms: list[str], category, position, index_view: str, shifted_category: bool) -> _Items:
    """Drop items whose raw or normalised string is empty. The 'official' view reads positions (and, for
    predictions, categories) from the unfiltered list at the filtered index, as the official code does."""
    keep = [k for k, it in enumerate(items) if it.content and norms[k]]
    shifted = keep if index_view == "faithful" else list(range(len(keep)))
    return _Items([norms[k] for k in keep], [items[k].content for k in keep],
                  [category(items[k]) for k in (shifted if shifted_category else keep)],
                  [position(items[k]) for k in shifted])


def _match_tables(gt_tables: list[GTBlock], preds: list[PredBlock]) -> tuple[list[dict], list[PredBlock]]:
    """Step 1: one entry per GT table, and the text items made of leftover predicted tables."""
    html = [p for p in preds if p.kind == "table" and p.table_format == "html" and p.content]
    latex = [p for p in preds if p.kind == "table" and p.table_format == "latex"]
    # the benchmark matches LaTeX predictions with the GT tables' LaTeX, HTML ones with their HTML, and drops a GT
    # table whose form of that kind is empty (it is then not scored at all)
    gts = [g for g in gt_tables if (g.latex if len(latex) > len(html) else g.content)]
    partner: dict[int, PredBlock] = {}
    leftovers: list[PredBlock] = []
    if len(latex) <= len(html) and html:
        matches = simple_match([g.content for g in gts], [p.content for p in html])
        partner = {m.gt[0]: html[m.pred[0]] for m in matches if m.pred}
        used = {id(p) for p in partner.values()}
        leftovers = [PredBlock("text", cell, p.position, p.fine)
                     for p in html if id(p) not in used for cell in table_cell_texts(p.content)]
    tables = []
    for k, g in enumerate(gts):
        pred = partner.get(k)
        norm_gt, norm_pred = normalize_table_html(g.content), normalize_table_html(pred.content) if pred else ""
        tables.append({
            "order": g.order, "matched": pred is not None, "pred_format": "html" if pred else None,
            "teds": teds_normalized(norm_pred, norm_gt), "teds_s": teds_normalized(norm_pred, norm_gt, True),
            "edit_pair": edit_and_upper(norm_pred or (pred.content if pred else ""), norm_gt),
        })
    return tables, leftovers


def _match_mix(gt: _Items, pred: _Items) -> list[Match]:
    try:
        with time_limit(MATCH_TIME_LIMIT_S):
            return quick_match(gt.norm, gt.category, pred.norm)
    except StepTimeout:
        return simple_match(gt.norm, pred.norm)


def _pair_category(m: Match, gt: _Items) -> str:
    cats = [gt.category[g] for g in m.gt]
    scored = [c for c in cats if c not in IGNORED_TEXT_CATEGORIES]
    return Counter(scored or cats).most_common(1)[0][0]


def _joined(indices, raw: list[str]) -> str:
    """The LaTeX of a pair's side as the benchmark hands it to CDM: one item as it is, several stacked in an
    array (each `$`-stripped and braced)."""
    if len(indices) <= 1:
        return "".join(raw[i] for i in indices)
    rows = " \\\\ ".join("{" + raw[i].strip("$").strip("\n") + "}" for i in indices)
    return "\\begin{array}{l} " + rows + " \\end{array}"


def _formula_gt_as_text(m: Match, gt: _Items) -> tuple[str, str]:
    """(norm, raw) of a GT display formula the prediction wrote as text: rendered to unicode, then cleaned.
    Several GT formulas in one pair are stacked in an array first, as the benchmark does."""
    if len(m.gt) > 1:
        rows = " \\\\ ".join("{" + gt.raw[g].strip("$").strip("\n") + "}" for g in m.gt)
        latex = "\\begin{array}{l} " + rows + " \\end{array}"
    else:
        latex = gt.raw[m.gt[0]]
    rendered = latex_to_unicode(latex)
    return clean_string(rendered), rendered


def _prediction_items(preds: list[PredBlock], cells: list[PredBlock]) -> list[PredBlock]:
    """Non-table items grouped by category in order of first appearance, then table cells; sorted by position
    with inline formulas last (stable), as the benchmark builds its list."""
    groups: dict[str, list[PredBlock]] = {}
    for p in preds:
        if p.kind != "table":
            groups.setdefault(p.kind, []).append(p)
    items = [p for g in groups.values() for p in g] + cells
    return sorted(items, key=lambda p: (p.fine == "equation_inline", p.position))


def _split_formula_arrays(items: list[PredBlock]) -> list[PredBlock]:
    """A predicted single-column `array` formula becomes one formula item per row, like a GT one."""
    out = []
    for p in items:
        rows = single_column_array_rows(p.content) if p.kind == "formula" else None
        if rows is None:
            out.append(p)
        else:
            out += [PredBlock("formula", f"\\[{r}\\]", p.position + at, p.fine) for r, at in rows]
    return out


def evaluate_page(pred_md: str, gt_page: dict, index_view: str = "faithful") -> dict:
    """All OmniDocBench figures for one page; a ratio is None where the page has nothing of that kind."""
    gt_mix, gt_tables = gt_page_items(gt_page)
    preds = split_markdown(pred_md)
    tables, cells = _match_tables(gt_tables, preds) if gt_tables else ([], [])
    pred_items = _split_formula_arrays(_prediction_items(preds, cells))
    gt = _views(gt_mix, [_norm_gt(g) for g in gt_mix], lambda g: g.category, lambda g: g.order or "", index_view,
               shifted_category=False)
    pred = _views(pred_items, [_norm_pred(p) for p in pred_items], lambda p: p.category, lambda p: p.position,
                  index_view, shifted_category=True)

    text_pairs, formula_pairs, order_pairs, formula_latex = [], [], [], []
    for m in _match_mix(gt, pred):
        category = _pair_category(m, gt)
        norm_pred = "".join(pred.norm[j] for j in m.pred)
        pred_category = pred.category[m.pred[0]] if m.pred else ""
        if category in TEXT_CATEGORIES and category not in IGNORED_TEXT_CATEGORIES:
            text_pairs.append(edit_and_upper(norm_pred, "".join(gt.norm[g] for g in m.gt)))
            order_pairs.append(([gt.position[g] for g in m.gt], pred.position[m.pred[0]] if m.pred else ""))
        elif category == "equation_isolated" and pred_category in FORMULA_PRED_CATEGORIES:
            formula_pairs.append(edit_and_upper(norm_pred, "".join(gt.norm[g] for g in m.gt)))
            formula_latex.append((_joined(m.gt, gt.raw), _joined(m.pred, pred.raw)))
        elif category == "equation_isolated":  # written as text: scored as text (hybrid matching)
            norm_gt, raw_gt = _formula_gt_as_text(m, gt)
            text_pairs.append(edit_and_upper(norm_pred, norm_gt or raw_gt))
    text_pairs = [p for p in text_pairs if p[1] > 0]
    formula_pairs = [p for p in formula_pairs if p[1] > 0]
    table_pairs = [t["edit_pair"] for t in tables if t["edit_pair"][1] > 0]
    return {
        "text_edit": pairs_ratio(text_pairs), "text_pairs": text_pairs,
        "reading_order_edit": reading_order_edit(order_pairs),
        "formula_edit": pairs_ratio(formula_pairs), "formula_pairs": formula_pairs,
        "formula_latex": formula_latex,  # (GT, prediction) LaTeX of each formula pair, as CDM renders them
        "tables": tables, "table_edit": pairs_ratio(table_pairs),
        "table_teds": sum(t["teds"] for t in tables) / len(tables) if tables else None,
        "table_teds_s": sum(t["teds_s"] for t in tables) / len(tables) if tables else None,
        "num_gt_text_blocks": sum(g.kind == "text" and not g.ignored for g in gt_mix),
        "num_pred_blocks": len(preds),
        "num_latex_tables_not_scored": sum(p.kind == "table" and p.table_format == "latex" for p in preds),
    }

"""OmniDocBench end-to-end page metrics: text edit distance, reading order, table TEDS, formula edit distance.

Reference: the OmniDocBench v1.5 end-to-end evaluator (metric definitions, ignored categories, `ALL_page_avg`:
the value its leaderboard generator `tools/generate_result_tables.ipynb` reads, so that is what we report, with
the protocol logged beside every score). Per page:

1. GT blocks from the benchmark JSON (omnidocbench_gt.py), predicted blocks from the page's markdown
   (markdown_blocks.py).
2. Tables first: GT tables are paired with predicted HTML / pipe tables by a Hungarian assignment on 1 - TEDS;
   an unmatched GT table scores TEDS 0, an unmatched predicted table is demoted to plain text (the benchmark
   does the same). LaTeX tables are not converted (needs latexml) and are also demoted to text.
3. Text and display formulas are matched together ("hybrid matching" of v1.5) by matching.py on normalised
   strings (inline LaTeX -> unicode, then clean_string). Ignored categories are matched, then dropped.
4. Text: per page `sum(edit) / sum(max(len))` over scored GT text blocks; a missed block costs its full length;
   predictions matching no GT block are not charged (the benchmark keeps only GT-anchored pairs).
   A GT formula matched to predicted text is scored as text, as v1.5 does.
5. Reading order over the scored GT text blocks (reading_order.py).
6. Display formulas: the same edit ratio on normalize_formula strings. This is only the CI proxy for the
   benchmark's formula score, CDM, which renders both formulas with LaTeX and matches character boxes
   (needs pdflatex, ImageMagick, Node.js): CDM is out of scope here, so the Overall score is not computed.

Aggregates follow the benchmark: `ALL_page_avg` (mean of per-page ratios, the leaderboard value),
`edit_whole` (corpus-level ratio) and `edit_sample_avg` (mean over blocks of each block's ratio).
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean

import numpy as np
from scipy.optimize import linear_sum_assignment

from .edit_distance import edit_and_upper
from .markdown_blocks import split_markdown
from .matching import match_blocks
from .normalize import clean_string, latex_to_unicode, normalize_formula, normalize_text
from .omnidocbench_gt import GTBlock, gt_blocks, page_stem
from .reading_order import reading_order_edit
from .teds import TableNode, html_to_tree, tree_teds

METRICS_VERSION = "ocr2-omnidocbench/1"
PROTOCOL = {
    "benchmark": "OmniDocBench v1.5 end-to-end protocol (opendatalab/OmniDocBench @ 7bd6c2e)",
    "metrics_version": METRICS_VERSION,
    "match_method": "hungarian + adjacent merge (simplified quick_match; see eval/metrics/matching.py)",
    "text_normalisation": "inline LaTeX -> unicode (pylatexenc), then clean_string",
    "table_metric": "TEDS / TEDS-S (apted), th->td, thead/tbody dropped",
    "formula_metric": "edit distance on normalised LaTeX (CI proxy; CDM not computed)",
    "aggregate": "ALL_page_avg (mean over pages of sum(edit)/sum(upper_len))",
}
CDM_UNAVAILABLE = (
    "CDM (render-and-match formula score) needs pdflatex, ImageMagick and Node.js and is not implemented; "
    "Overall = ((1 - TextEdit) * 100 + TEDS + FormulaCDM) / 3 needs it, so Overall is not reported."
)


def _formula_text_view(latex: str) -> str:
    """How a display formula looks as text: its unicode rendering, cleaned (used for matching and hybrid pairs).
    Falls back to the normalised LaTeX when the rendering is empty (e.g. only macros pylatexenc does not know)."""
    formula = normalize_formula(latex)
    return clean_string(latex_to_unicode(formula)) or formula


def _table_text(node: TableNode | None, raw: str) -> str:
    """The cell text of a predicted table that is scored as plain text (unmatched, or LaTeX we do not convert)."""
    if node is not None:
        return "".join(c.content for row in node.children for c in row.children)
    return clean_string(latex_to_unicode(raw))


def _match_tables(gt_trees: list, pred_trees: list) -> list[tuple[int, int | None]]:
    """Hungarian pairing of GT tables with predicted tables on 1 - TEDS; (gt index, pred index or None)."""
    if not gt_trees:
        return []
    if not pred_trees:
        return [(i, None) for i in range(len(gt_trees))]
    cost = np.array([[1.0 - tree_teds(p, g) for p in pred_trees] for g in gt_trees])
    rows, cols = linear_sum_assignment(cost)
    paired = {int(r): int(c) for r, c in zip(rows, cols)}
    return [(i, paired.get(i)) for i in range(len(gt_trees))]


def evaluate_page(pred_md: str, gt_page: dict) -> dict:
    """All OmniDocBench figures for one page; a ratio is None where the page has nothing of that kind.

    Keys: `text_edit` (sum(edit)/sum(upper_len) over scored text), `reading_order_edit`, `formula_edit` (CDM
    proxy), `table_teds` / `table_teds_s` (mean over the page's GT tables), the raw `(edit, upper_len)` pairs
    `text_pairs` / `formula_pairs` and per-table entries `tables` (for corpus-level aggregates), and block counts.
    """
    gts = gt_blocks(gt_page)
    preds = split_markdown(pred_md)

    # -- tables ------------------------------------------------------------------------------------------
    gt_tables = [g for g in gts if g.kind == "table"]
    pred_tables = [p for p in preds if p.kind == "table" and p.table_format in ("html", "markdown")]
    gt_trees = [html_to_tree(g.content) for g in gt_tables]
    pred_trees = [html_to_tree(p.content) for p in pred_tables]
    tables, used_pred_tables = [], set()
    for gi, pj in _match_tables(gt_trees, pred_trees):
        pred_tree = pred_trees[pj] if pj is not None else None
        if pj is not None:
            used_pred_tables.add(id(pred_tables[pj]))
        tables.append({
            "order": gt_tables[gi].order,
            "matched": pj is not None,
            "pred_format": pred_tables[pj].table_format if pj is not None else None,
            "teds": tree_teds(pred_tree, gt_trees[gi]) if gt_trees[gi] else 0.0,
            "teds_s": tree_teds(pred_tree, gt_trees[gi], structure_only=True) if gt_trees[gi] else 0.0,
        })

    # -- text + display formulas, matched together -----------------------------------------------------------
    gt_mix = [g for g in gts if g.kind in ("text", "formula")]
    gt_views = [normalize_text(g.content) if g.kind == "text" else _formula_text_view(g.content) for g in gt_mix]
    pred_mix, pred_views = [], []
    for p in preds:
        if p.kind == "text":
            view = normalize_text(p.content)
        elif p.kind == "formula":
            view = _formula_text_view(p.content)
        elif id(p) not in used_pred_tables:  # an unmatched or LaTeX table, demoted to text
            view = _table_text(html_to_tree(p.content), p.content)
        else:
            continue
        if view:
            pred_mix.append(p)
            pred_views.append(view)
    keep = [k for k, g in enumerate(gt_mix) if gt_views[k] or (g.kind == "formula" and normalize_formula(g.content))]
    gt_mix, gt_views = [gt_mix[k] for k in keep], [gt_views[k] for k in keep]
    matches = match_blocks(gt_views, pred_views, gt_keys=[(g.kind, g.ignored) for g in gt_mix])

    text_pairs, formula_pairs, order_matched = [], [], []
    unmatched_pred = 0
    for m in matches:
        if not m.gt:
            unmatched_pred += 1
            continue
        group: list[GTBlock] = [gt_mix[i] for i in m.gt]
        if group[0].ignored:
            continue
        pred_blocks = [pred_mix[j] for j in m.pred]
        if group[0].kind == "formula" and all(p.kind == "formula" for p in pred_blocks):
            pred_f = "".join(normalize_formula(p.content) for p in pred_blocks)
            gt_f = "".join(normalize_formula(g.content) for g in group)
            formula_pairs.append(edit_and_upper(pred_f, gt_f))
        else:  # text, or a GT formula the prediction wrote as text (v1.5 hybrid matching)
            edit, upper = edit_and_upper("".join(pred_views[j] for j in m.pred), "".join(gt_views[i] for i in m.gt))
            text_pairs.append((edit, upper))
            if group[0].kind == "text" and m.pred:
                order_matched.append(([o for g in group for o in g.orders], min(p.position for p in pred_blocks)))
    text_pairs = [(e, u) for e, u in text_pairs if u > 0]
    formula_pairs = [(e, u) for e, u in formula_pairs if u > 0]
    scored_text = [g for g in gt_mix if g.kind == "text" and not g.ignored]

    return {
        "text_edit": _whole(text_pairs),
        "text_pairs": text_pairs,
        "reading_order_edit": reading_order_edit([g.orders for g in scored_text], order_matched),
        "formula_edit": _whole(formula_pairs),
        "formula_pairs": formula_pairs,
        "tables": tables,
        "table_teds": fmean(t["teds"] for t in tables) if tables else None,
        "table_teds_s": fmean(t["teds_s"] for t in tables) if tables else None,
        "num_gt_text_blocks": len(scored_text),
        "num_pred_blocks": len(preds),
        "num_unmatched_pred_blocks": unmatched_pred,
        "num_latex_tables_not_scored": sum(p.kind == "table" and p.table_format == "latex" for p in preds),
    }


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


def _whole(pairs) -> float | None:
    """sum(edit) / sum(upper_len) of (edit, upper_len) pairs; None when there is nothing to score."""
    total = sum(u for _, u in pairs)
    return sum(e for e, _ in pairs) / total if total else None


def load_predictions(pred_dir: str | Path) -> dict[str, str]:
    """`<image stem>.md` (or `.mmd`) files of a folder, keyed by stem."""
    out = {}
    for path in sorted(Path(pred_dir).iterdir()):
        if path.suffix in (".md", ".mmd") and path.is_file():
            try:
                out[path.stem] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}: not UTF-8 text ({e})") from e
    return out


def load_gt(gt_json: str | Path | list[dict]) -> list[dict]:
    if isinstance(gt_json, list):
        return gt_json
    try:
        data = json.loads(Path(gt_json).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{gt_json}: not an OmniDocBench JSON file ({type(e).__name__}: {e})") from e
    if not isinstance(data, list):
        raise ValueError(f"{gt_json}: not an OmniDocBench JSON file (a list of pages expected)")
    return data


def evaluate_pages(preds: dict[str, str], gt_json_path: str | Path | list[dict]) -> dict:
    """Score predicted markdown (keyed by image stem) against an OmniDocBench JSON; pages without a
    prediction are skipped and listed. Returns a summary, the benchmark-named breakdown and per-page entries."""
    pages, missing = {}, []
    for i, gt_page in enumerate(load_gt(gt_json_path)):
        try:
            stem = page_stem(gt_page)
        except (KeyError, TypeError) as e:
            raise ValueError(f"{gt_json_path if not isinstance(gt_json_path, list) else 'ground truth'}: page {i} "
                             f"has no page_info.image_path") from e
        if stem not in preds:
            missing.append(stem)
            continue
        try:
            pages[stem] = evaluate_page(preds[stem], gt_page)
        except Exception as e:  # noqa: BLE001 - malformed ground truth: name the page, not a bare KeyError
            raise ValueError(f"page {stem}: cannot be scored ({type(e).__name__}: {e})") from e

    text_pairs = [p for r in pages.values() for p in r["text_pairs"]]
    formula_pairs = [p for r in pages.values() for p in r["formula_pairs"]]
    tables = [t for r in pages.values() for t in r["tables"]]
    text = {
        "ALL_page_avg": _mean(r["text_edit"] for r in pages.values()),
        "edit_whole": _whole(text_pairs),
        "edit_sample_avg": _mean(e / u for e, u in text_pairs),
    }
    formula = {
        "Edit_dist_ALL_page_avg": _mean(r["formula_edit"] for r in pages.values()),
        "edit_whole": _whole(formula_pairs),
        "edit_sample_avg": _mean(e / u for e, u in formula_pairs),
        "CDM": None,
        "CDM_reason": CDM_UNAVAILABLE,
    }
    table = {
        "TEDS": _mean(t["teds"] for t in tables),
        "TEDS_structure_only": _mean(t["teds_s"] for t in tables),
        "TEDS_page_avg": _mean(r["table_teds"] for r in pages.values()),
        "TEDS_structure_only_page_avg": _mean(r["table_teds_s"] for r in pages.values()),
        "num_tables": len(tables),
        "num_tables_unmatched": sum(not t["matched"] for t in tables),
    }
    reading = {"ALL_page_avg": _mean(r["reading_order_edit"] for r in pages.values())}
    return {
        "summary": {
            "pages": len(pages),
            "text_edit": text["ALL_page_avg"],
            "reading_order_edit": reading["ALL_page_avg"],
            "table_teds": table["TEDS"],
            "table_teds_s": table["TEDS_structure_only"],
            "formula_edit": formula["Edit_dist_ALL_page_avg"],
            "formula_cdm": None,
            "overall": overall_score(text["ALL_page_avg"], table["TEDS"], None),
        },
        "text_block": text,
        "reading_order": reading,
        "table": table,
        "display_formula": formula,
        "overall_reason": CDM_UNAVAILABLE,
        "missing_predictions": missing,
        "pages": pages,
        "protocol": dict(PROTOCOL),
    }


def overall_score(text_edit: float | None, teds: float | None, cdm: float | None) -> float | None:
    """OmniDocBench v1.5 Overall, `((1 - TextEdit) * 100 + TEDS + FormulaCDM) / 3` with TEDS and CDM in [0, 1]
    here (the leaderboard prints them x100). None unless all three are available - in particular without CDM."""
    if text_edit is None or teds is None or cdm is None:
        return None
    return ((1.0 - text_edit) * 100.0 + teds * 100.0 + cdm * 100.0) / 3.0

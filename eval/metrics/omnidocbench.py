"""OmniDocBench v1.5 end-to-end metrics over a set of pages: the benchmark's aggregates, with the protocol.

Reference (Apache-2.0; our own code): opendatalab/OmniDocBench @ 7bd6c2e, `quick_match`, `configs/end2end.yaml`
(text_block: Edit_dist; display_formula: Edit_dist, CDM; table: TEDS, Edit_dist; reading_order: Edit_dist).
Each page is scored by omnidocbench_page.py; here the figures are aggregated as the benchmark does:
`ALL_page_avg` (mean over pages of sum(edit)/sum(upper_len) - the value the leaderboard reads), `edit_whole`
(corpus-level ratio), `edit_sample_avg` (mean of per-pair ratios); TEDS / TEDS-S are means over GT tables.

Text is computed the faithful way; `text_block.ALL_page_avg_official_index_bug` is, clearly labelled, what the
official code prints because of an index bug (see omnidocbench_page.py and docs/omnidocbench_agreement.md).
The formula metric of the leaderboard, CDM, renders both formulas with LaTeX; it is not computed here (ocr2-eval
adds it with the official CDM where the tools are installed: eval/metrics/cdm.py), so the Overall score is not
reported by evaluate_pages (CDM_UNAVAILABLE says why).
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean

from .edit_distance import pairs_ratio
from .omnidocbench_gt import page_stem
from .omnidocbench_page import evaluate_page

METRICS_VERSION = "ocr2-omnidocbench/2"
PROTOCOL = {
    "benchmark": "OmniDocBench v1.5 end-to-end protocol (opendatalab/OmniDocBench @ 7bd6c2e)",
    "metrics_version": METRICS_VERSION,
    "match_method": "quick_match (eval/metrics/matching.py; simple match after 30 s, as the benchmark)",
    "text_normalisation": "inline LaTeX with \\ ^ _ -> unicode (pylatexenc), then clean_string",
    "formula_normalisation": "normalized_formula (delimiters, tags, environments, font/spacing commands, spaces)",
    "table_metric": "TEDS / TEDS-S and edit distance on the benchmark's normalised HTML (apted)",
    "formula_metric": "edit distance on normalised LaTeX; CDM by the official metrics/cdm where its tools are "
                      "installed (metrics.json `cdm` says whether it was)",
    "aggregate": "ALL_page_avg (mean over pages of sum(edit)/sum(upper_len))",
    "text_index_view": "faithful (the official index bug is reported apart, labelled)",
    "agreement": "docs/omnidocbench_agreement.md",
}
CDM_UNAVAILABLE = (
    "CDM (render-and-match formula score) is computed only by ocr2-eval, with the official CDM and its tools "
    "(XeLaTeX, ImageMagick 7, Node.js; eval/metrics/cdm_tools.py); without it Overall = ((1 - TextEdit) * 100 + "
    "TEDS + FormulaCDM) / 3 is not reported."
)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


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


def score_page(pred_md: str, gt_page: dict, stem: str = "") -> dict:
    """One page's figures (omnidocbench_page.evaluate_page) plus, labelled, the official index-bug text figure."""
    try:
        page = evaluate_page(pred_md, gt_page)
        page["text_edit_official_index_bug"] = evaluate_page(pred_md, gt_page, "official")["text_edit"]
    except Exception as e:  # noqa: BLE001 - malformed ground truth: name the page, not a bare KeyError
        raise ValueError(f"page {stem}: cannot be scored ({type(e).__name__}: {e})") from e
    return page


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
        pages[stem] = score_page(preds[stem], gt_page, stem)
    return aggregate(pages, missing)


def aggregate(pages: dict[str, dict], missing: list[str] | None = None) -> dict:
    """The benchmark's aggregates over scored pages (score_page results, keyed by stem)."""
    missing = list(missing or [])
    text_pairs = [p for r in pages.values() for p in r["text_pairs"]]
    formula_pairs = [p for r in pages.values() for p in r["formula_pairs"]]
    tables = [t for r in pages.values() for t in r["tables"]]
    text = {
        "ALL_page_avg": _mean(r["text_edit"] for r in pages.values()),
        "ALL_page_avg_official_index_bug": _mean(r["text_edit_official_index_bug"] for r in pages.values()),
        "edit_whole": pairs_ratio(text_pairs),
        "edit_sample_avg": _mean(e / u for e, u in text_pairs),
    }
    formula = {
        "Edit_dist_ALL_page_avg": _mean(r["formula_edit"] for r in pages.values()),
        "edit_whole": pairs_ratio(formula_pairs),
        "edit_sample_avg": _mean(e / u for e, u in formula_pairs),
        "CDM": None,
        "CDM_reason": CDM_UNAVAILABLE,
    }
    table = {
        "TEDS": _mean(t["teds"] for t in tables),
        "TEDS_structure_only": _mean(t["teds_s"] for t in tables),
        "TEDS_page_avg": _mean(r["table_teds"] for r in pages.values()),
        "TEDS_structure_only_page_avg": _mean(r["table_teds_s"] for r in pages.values()),
        "Edit_dist_ALL_page_avg": _mean(r["table_edit"] for r in pages.values()),
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
            "table_edit": table["Edit_dist_ALL_page_avg"],
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

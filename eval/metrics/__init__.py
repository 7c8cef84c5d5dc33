"""Evaluation metrics for ocr2: pure functions (no torch), each in its own module.

OmniDocBench v1.5 end-to-end protocol (opendatalab/OmniDocBench @ 7bd6c2e, quick_match; agreement with the
official evaluator in docs/omnidocbench_agreement.md):
- normalize: text/formula normalisation (clean_string, inline LaTeX -> unicode, normalized_formula)
- markdown_blocks, pipe_tables: prediction splitting (md_tex_filter), pipe tables -> HTML
- omnidocbench_gt: GT items of a page (truncated merges, category order, array splitting)
- matching, truncation_merge: quick_match and the simple match
- table_normalize, teds: table normalisation, TEDS / TEDS-S
- omnidocbench_page, omnidocbench: one page's figures; the benchmark's aggregates and protocol
- omnidocbench_groups: figures per page type and per page attribute (the leaderboard's breakdown)
- time_limit: wall-clock limits on scoring steps
- edit_distance: Levenshtein and normalised edit distance
- fox: Fox-style page OCR precision / recall / F1 / edit distance
- repetition: loop detection and the repetition rate
"""

from .edit_distance import edit_and_upper, levenshtein, normalized_edit_distance, pairs_ratio
from .fox import fox_metrics, fox_page_metrics, fox_tokenize
from .markdown_blocks import PredBlock, split_markdown
from .matching import Match, quick_match, simple_match
from .normalize import clean_string, inline_latex_to_unicode, latex_to_unicode, normalize_formula, normalize_text
from .omnidocbench import (
    CDM_UNAVAILABLE, PROTOCOL, aggregate, evaluate_page, evaluate_pages, load_gt, load_predictions, overall_score,
    score_page,
)
from .omnidocbench_gt import IGNORED_TEXT_CATEGORIES, GTBlock, gt_blocks, gt_page_items, page_stem
from .reading_order import reading_order_edit, sequence_order_edit
from .repetition import detect_loop, is_repetitive, repetition_rate
from .table_normalize import normalize_table_html
from .teds import teds

__all__ = [
    "CDM_UNAVAILABLE", "GTBlock", "IGNORED_TEXT_CATEGORIES", "Match", "PROTOCOL", "PredBlock", "aggregate",
    "clean_string",
    "detect_loop", "edit_and_upper", "evaluate_page", "evaluate_pages", "fox_metrics", "fox_page_metrics",
    "fox_tokenize", "gt_blocks", "gt_page_items", "inline_latex_to_unicode", "is_repetitive", "latex_to_unicode",
    "levenshtein", "load_gt", "load_predictions", "normalize_formula", "normalize_table_html", "normalize_text",
    "normalized_edit_distance", "overall_score", "page_stem", "pairs_ratio", "quick_match", "repetition_rate",
    "reading_order_edit", "score_page", "sequence_order_edit", "simple_match", "split_markdown", "teds",
]

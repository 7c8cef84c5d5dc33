"""Evaluation metrics for ocr2: pure functions (no torch), each in its own module.

- normalize: OmniDocBench text/formula normalisation (clean_string, inline LaTeX -> unicode)
- edit_distance: Levenshtein and normalised edit distance
- omnidocbench: page text NED, reading-order ED, table TEDS/TEDS-S, display-formula ED (CDM proxy)
- teds: TEDS on HTML tables (apted)
- fox: Fox-style page OCR precision / recall / F1 / edit distance
- repetition: loop detection and the repetition rate
"""

from .edit_distance import edit_and_upper, levenshtein, normalized_edit_distance
from .fox import fox_metrics, fox_page_metrics, fox_tokenize
from .markdown_blocks import PredBlock, split_markdown
from .matching import Match, match_blocks
from .normalize import clean_string, inline_latex_to_unicode, latex_to_unicode, normalize_formula, normalize_text
from .omnidocbench import (
    CDM_UNAVAILABLE, PROTOCOL, evaluate_page, evaluate_pages, load_gt, load_predictions, overall_score,
)
from .omnidocbench_gt import IGNORED_TEXT_CATEGORIES, GTBlock, gt_blocks, page_stem
from .reading_order import reading_order_edit, sequence_order_edit
from .repetition import detect_loop, is_repetitive, repetition_rate
from .teds import html_to_tree, teds

__all__ = [
    "CDM_UNAVAILABLE", "GTBlock", "IGNORED_TEXT_CATEGORIES", "Match", "PROTOCOL", "PredBlock", "clean_string",
    "detect_loop", "edit_and_upper", "evaluate_page", "evaluate_pages", "fox_metrics", "fox_page_metrics",
    "fox_tokenize", "gt_blocks", "html_to_tree", "inline_latex_to_unicode", "is_repetitive", "latex_to_unicode",
    "levenshtein", "load_gt", "load_predictions", "match_blocks", "normalize_formula", "normalize_text",
    "normalized_edit_distance", "overall_score", "page_stem", "reading_order_edit", "repetition_rate",
    "sequence_order_edit", "split_markdown", "teds",
]

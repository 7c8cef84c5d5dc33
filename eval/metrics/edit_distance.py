"""Levenshtein distance and the normalised edit distance (NED) every OCR benchmark here reports.

Reference: OmniDocBench (`metrics/cal_metric.py::call_Edit_dist`: `Levenshtein.distance`, divided by
`max(len(pred), len(gt))`) and Fox (ucaslcl/Fox `eval_tools/eval_ocr_test.py`: the same ratio on raw
characters). We use rapidfuzz, a maintained C++ implementation, rather than a hand-written dynamic programme:
unit cost for insert, delete and substitute.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from rapidfuzz.distance import Levenshtein


def levenshtein(a: str | Sequence[Hashable], b: str | Sequence[Hashable]) -> int:
    """Minimum number of single-element insertions, deletions and substitutions turning `a` into `b`.

    Works on strings and on sequences of hashables (the reading-order metric compares lists of block indices).
    """
    return int(Levenshtein.distance(a, b))


def normalized_edit_distance(pred: str | Sequence[Hashable], gt: str | Sequence[Hashable]) -> float:
    """`levenshtein(pred, gt) / max(len(pred), len(gt))`, in [0, 1]; 0.0 when both are empty (nothing to get wrong)."""
    upper = max(len(pred), len(gt))
    if upper == 0:
        return 0.0
    return levenshtein(pred, gt) / upper


def edit_and_upper(pred: str, gt: str) -> tuple[int, int]:
    """The pair (edit, upper_len) OmniDocBench accumulates per page: NED = sum(edit) / sum(upper_len)."""
    return levenshtein(pred, gt), max(len(pred), len(gt))


def pairs_ratio(pairs) -> float | None:
    """sum(edit) / sum(upper_len) of (edit, upper_len) pairs (a page's figure); None when there is nothing to score."""
    total = sum(u for _, u in pairs)
    return sum(e for e, _ in pairs) / total if total else None

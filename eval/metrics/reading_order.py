"""Reading-order edit distance: does the prediction give the page's text blocks in the annotated order?

Reference: OmniDocBench's reading-order edit distance (`dataset/end2end_dataset.py::get_order_paired`). Over
the page's scored plain-text GT blocks: the GT sequence is every block's reading-order index, sorted; the
predicted sequence is the indices of the *matched* blocks, listed in the order the prediction emits them. The
score is `Levenshtein(gt_seq, pred_seq) / max(len)`: 0 = same order with nothing missing, 1 = nothing in place.
Blocks missed by the prediction lengthen the GT sequence, so omissions also cost. Index 0 (no annotated order)
is left out, as in the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

from .edit_distance import levenshtein


def reading_order_edit(
    gt_orders: Sequence[Sequence[int]], matched: Sequence[tuple[Sequence[int], float]]
) -> float | None:
    """`gt_orders`: the order indices of every scored GT text block (one tuple per block, several when merged);
    `matched`: for each matched group, (its GT order indices, its position in the prediction).
    Returns the normalised edit distance, or None when the page has no ordered text at all."""
    gt_seq = sorted(o for orders in gt_orders for o in orders if o)
    pred_seq = [o for orders, _ in sorted(matched, key=lambda m: m[1]) for o in sorted(orders) if o]
    upper = max(len(gt_seq), len(pred_seq))
    if upper == 0:
        return None
    return levenshtein(gt_seq, pred_seq) / upper


def sequence_order_edit(pred_seq: Sequence[int]) -> float:
    """Order edit distance of a permutation-like sequence against its sorted self (0 when already in order)."""
    gt_seq = sorted(pred_seq)
    return levenshtein(gt_seq, list(pred_seq)) / len(gt_seq) if gt_seq else 0.0

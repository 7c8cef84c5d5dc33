"""Reading-order edit distance: does the prediction give the page's text blocks in the annotated order?

Reference (Apache-2.0; our own code): OmniDocBench @ 7bd6c2e `dataset/end2end_dataset.py::get_order_paired`.
Over the page's scored text pairs: the GT sequence is the annotated orders of every pair's GT blocks, sorted;
the predicted sequence is the orders of the pairs that found a prediction, listed in the order of their first
prediction. `Levenshtein(gt_seq, pred_seq) / max(len)`: 0 = same order with nothing missing. Missed blocks
lengthen only the GT sequence, so omissions cost too. A missing order ("" or 0) is left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from .edit_distance import levenshtein


def reading_order_edit(order_pairs: Sequence[tuple[list, object]]) -> float | None:
    """`order_pairs`: per text pair, (its GT orders, the position of its first prediction or "" if none).
    None when the page has no ordered text at all."""
    matched = [(orders, pos) for orders, pos in order_pairs if orders != [""] and pos != ""]
    gt_seq = sorted(o for orders, _ in order_pairs if orders != [""] for o in orders if o)
    pred_seq = [o for orders, _ in sorted(matched, key=lambda x: x[1]) for o in orders if o]
    upper = max(len(gt_seq), len(pred_seq))
    return levenshtein(gt_seq, pred_seq) / upper if upper else None


def sequence_order_edit(pred_seq: Sequence[int]) -> float:
    """Order edit distance of a permutation-like sequence against its sorted self (0 when already in order)."""
    gt_seq = sorted(pred_seq)
    return levenshtein(gt_seq, list(pred_seq)) / len(gt_seq) if gt_seq else 0.0

"""Pair ground-truth blocks with predicted blocks: our documented simplification of OmniDocBench `quick_match`.

Reference: OmniDocBench v1.5 `quick_match` (`utils/match_quick.py`: a Levenshtein cost matrix
solved with `scipy.optimize.linear_sum_assignment`, plus merging of adjacent blocks when a paragraph is split
differently in the prediction and the ground truth).

Our version, in three passes over strings that are already normalised:
1. confident one-to-one pairs: Hungarian assignment on the normalised-edit-distance matrix, keeping only pairs
   whose distance is below `confident_ned`;
2. adjacency merge: a still-unmatched block joins a matched group when it is the next/previous block (in GT
   reading order, or in prediction order) of that group and the merge strictly lowers the group's edit
   distance - e.g. a prediction that writes two GT paragraphs as one, or one GT paragraph as two. Only GT
   blocks with the same `gt_keys` value merge (text with text, scored with scored);
3. the leftovers are paired one-to-one by a second Hungarian assignment (any pair that shares something),
   and pass 2 runs again so those pairs can absorb their neighbours.
The official matcher also truncates and re-splits blocks and runs a fuzzy substring search; those refinements
are not reproduced, so figures can differ from the official ones on pages whose block boundaries disagree.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class Match:
    gt: tuple[int, ...]  # indices into the GT list (contiguous, ascending); empty: an unmatched prediction
    pred: tuple[int, ...]  # indices into the prediction list (contiguous, ascending); empty: a missed GT block


def _cost_matrix(gt: Sequence[str], pred: Sequence[str]) -> np.ndarray:
    return np.asarray(cdist(gt, pred, scorer=Levenshtein.normalized_distance, workers=1), dtype=np.float64)


def _hungarian(gt: Sequence[str], pred: Sequence[str], gi: list[int], pi: list[int], below: float):
    if not gi or not pi:
        return []
    cost = _cost_matrix([gt[i] for i in gi], [pred[j] for j in pi])
    rows, cols = linear_sum_assignment(cost)
    return [(gi[r], pi[c]) for r, c in zip(rows, cols) if cost[r, c] < below]


def match_blocks(
    gt: Sequence[str],
    pred: Sequence[str],
    gt_keys: Sequence[Hashable] | None = None,
    confident_ned: float = 0.5,
) -> list[Match]:
    """Match normalised GT strings (in GT reading order) to normalised predicted strings (in prediction order).

    Returns every GT index exactly once (matched or with `pred=()`) and every prediction index exactly once
    (matched or with `gt=()`), matched groups first, ordered by their first GT index.
    """
    keys = list(gt_keys) if gt_keys is not None else [None] * len(gt)
    groups: list[tuple[list[int], list[int]]] = [
        ([i], [j]) for i, j in _hungarian(gt, pred, list(range(len(gt))), list(range(len(pred))), confident_ned)
    ]

    def edit(group) -> int:
        return Levenshtein.distance("".join(pred[j] for j in group[1]), "".join(gt[i] for i in group[0]))

    _merge_adjacent(groups, edit, keys, len(gt), len(pred))
    used_gt = {i for g in groups for i in g[0]}
    used_pred = {j for g in groups for j in g[1]}
    left_gt = [i for i in range(len(gt)) if i not in used_gt]
    left_pred = [j for j in range(len(pred)) if j not in used_pred]
    groups += [([i], [j]) for i, j in _hungarian(gt, pred, left_gt, left_pred, 1.0)]
    _merge_adjacent(groups, edit, keys, len(gt), len(pred))  # the new pairs can absorb their neighbours too

    used_gt = {i for g in groups for i in g[0]}
    used_pred = {j for g in groups for j in g[1]}
    out = [Match(tuple(g[0]), tuple(g[1])) for g in sorted(groups, key=lambda g: g[0][0])]
    out += [Match((i,), ()) for i in range(len(gt)) if i not in used_gt]
    out += [Match((), (j,)) for j in range(len(pred)) if j not in used_pred]
    return out


def _merge_adjacent(groups, edit, keys, n_gt: int, n_pred: int) -> None:
    """Pass 2: grow groups (in place) with adjacent unmatched blocks while that lowers their edit distance."""
    changed = True
    while changed:
        used_gt = {i for g in groups for i in g[0]}
        used_pred = {j for g in groups for j in g[1]}
        changed = any(
            _best_merge(groups, edit, lambda g: (sorted(g[0] + [i]), g[1]),
                        lambda g: keys[g[0][0]] == keys[i] and i in (g[0][0] - 1, g[0][-1] + 1)) is not None
            for i in range(n_gt) if i not in used_gt
        ) or any(
            _best_merge(groups, edit, lambda g: (g[0], sorted(g[1] + [j])),
                        lambda g: j in (g[1][0] - 1, g[1][-1] + 1)) is not None
            for j in range(n_pred) if j not in used_pred
        )


def _best_merge(groups, edit, grow, allowed):
    """Apply (in place) the allowed merge that lowers a group's edit distance most; return its index or None."""
    best, best_gain = None, 0
    for k, g in enumerate(groups):
        if not allowed(g):
            continue
        gain = edit(g) - edit(grow(g))
        if gain > best_gain:
            best, best_gain = k, gain
    if best is not None:
        groups[best] = grow(groups[best])
    return best

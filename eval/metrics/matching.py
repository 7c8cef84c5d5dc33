"""Pair GT blocks with predicted items: the OmniDocBench v1.5 `quick_match`, on already normalised strings.

Reference (Apache-2.0; our own code): OmniDocBench @ 7bd6c2e `utils/match_quick.py::match_gt2pred_quick` and
`utils/match.py::match_gt2pred_simple`. Only pairs that contain a GT block are returned: the benchmark scores
nothing else (a prediction that matches no GT block costs nothing).

quick_match, in passes:
1. ignored categories (headers, captions, page numbers, ...) first take *every* prediction within edit ratio
   0.25 of one of them (not one-to-one); those predictions leave the pool (the ignored blocks are never scored);
2. runs of consecutive predictions are merged where together they make up one GT block (truncation_merge.py);
3. a Hungarian assignment on the edit ratio; a pair above 0.7 is rejected;
4. each still unmatched GT block attaches to the first prediction, in prediction order, that contains it
   approximately (a window of its length within ratio 0.4) - also a prediction that is already matched;
5. a Hungarian assignment of the leftover GT blocks to the leftover predictions (any ratio); predictions left
   after that are dropped. GT blocks paired with the same prediction (or run) form one pair.
Trivial pages (no GT, no prediction, one of each) are paired directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein
from scipy.optimize import linear_sum_assignment

from .omnidocbench_gt import IGNORED_TEXT_CATEGORIES
from .truncation_merge import CONFIDENT, merge_truncated, ned_matrix

REJECT_ABOVE = 0.7
CONTAINED_BELOW = 0.4


@dataclass(frozen=True)
class Match:
    gt: tuple[int, ...]  # GT indices, in the order the benchmark concatenates them
    pred: tuple[int, ...]  # prediction indices (ascending); empty: the GT block(s) found no prediction


def _contains(pred: str, gt: str) -> bool:
    """Some window of `pred` as long as `gt` is within edit ratio 0.4 of it (the benchmark's sub_gt_fuzzy_matching)."""
    n = len(gt)
    if not 0 < n <= len(pred):
        return False
    cutoff = int(CONTAINED_BELOW * n) + 1  # distances above it cannot pass; rapidfuzz stops early there
    return any(Levenshtein.distance(pred[i:i + n], gt, score_cutoff=cutoff) / n < CONTAINED_BELOW
               for i in range(len(pred) - n + 1))


def _ignored_pass(gt: Sequence[str], cats: Sequence[str], pred: Sequence[str]) -> set[int]:
    """Step 1: the predictions taken by ignored-category GT blocks."""
    rows = [i for i, c in enumerate(cats) if c in IGNORED_TEXT_CATEGORIES]
    if not rows:
        return set()
    close = np.nonzero(ned_matrix([gt[i] for i in rows], pred) < CONFIDENT)
    return {int(j) for j in close[1]}


def _assign(cost: np.ndarray) -> list[tuple[int, int]]:
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols)]


def _main_pass(gt: Sequence[str], pred: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """Steps 2-5 over the non-ignored GT blocks and the pooled predictions: (GT indices, pred indices) groups."""
    cost, runs = merge_truncated(ned_matrix(gt, pred), gt, pred)
    keyed: dict[tuple[int, ...], list[int]] = {}  # prediction key -> GT indices, in insertion order
    unmatched_gt = []
    assigned = dict(_assign(cost))
    for g in range(len(gt)):
        if g not in assigned or cost[g, assigned[g]] > REJECT_ABOVE:
            unmatched_gt.append(g)
            continue
        run = runs[assigned[g]]
        keyed[tuple(range(run[0], run[-1] + 1)) if isinstance(run, list) else (run,)] = [g]
    taken = {g for gs in keyed.values() for g in gs}
    for j, p in enumerate(pred):  # step 4, in prediction order
        hits = [g for g in unmatched_gt if _contains(p, gt[g])]
        if not hits:
            continue
        fresh = [g for g in hits if g not in taken]
        keyed.setdefault((j,), []).extend(fresh)
        taken.update(fresh)
    used_pred = {j for key in keyed for j in key}
    left_gt = [g for g in range(len(gt)) if g not in taken]
    left_pred = [j for j in range(len(pred)) if j not in used_pred]
    groups = [(sorted(gs), list(key)) for key, gs in keyed.items() if gs]
    if left_gt and left_pred:  # step 5
        sub = ned_matrix([gt[g] for g in left_gt], [pred[j] for j in left_pred])
        groups += [([left_gt[r]], [left_pred[c]]) for r, c in _assign(sub)]
    return groups


def _merge_same_prediction(groups: list[tuple[list[int], list[int]]], n_gt: int) -> list[Match]:
    """GT blocks sharing one prediction key form one pair; GT blocks without a pair come last, alone."""
    merged: dict[tuple[int, ...], list[int]] = {}
    for gs, ps in groups:
        merged.setdefault(tuple(ps), []).extend(gs)
    out = [Match(tuple(gs), key) for key, gs in merged.items()]
    seen = {g for m in out for g in m.gt}
    return out + [Match((g,), ()) for g in range(n_gt) if g not in seen]


def quick_match(gt: Sequence[str], gt_categories: Sequence[str], pred: Sequence[str]) -> list[Match]:
    """Match normalised GT strings (in GT order, with their categories) to normalised predictions (in prediction
    order). Every GT index appears in exactly one returned Match."""
    if not gt:
        return []
    if not pred:
        return [Match((g,), ()) for g in range(len(gt))]
    if len(gt) == 1 and len(pred) == 1:
        return [Match((0,), (0,))]
    pool = [j for j in range(len(pred)) if j not in _ignored_pass(gt, gt_categories, pred)]
    kept = [g for g, c in enumerate(gt_categories) if c not in IGNORED_TEXT_CATEGORIES]
    ignored = [g for g, c in enumerate(gt_categories) if c in IGNORED_TEXT_CATEGORIES]
    groups = _main_pass([gt[g] for g in kept], [pred[j] for j in pool])
    matches = [Match(tuple(kept[g] for g in m.gt), tuple(pool[j] for j in m.pred))
               for m in _merge_same_prediction(groups, len(kept))]
    return matches + [Match((g,), ()) for g in ignored]  # never scored; listed so every GT index appears


def simple_match(gt: Sequence[str], pred: Sequence[str]) -> list[Match]:
    """The benchmark's `match_gt2pred_simple`: one Hungarian assignment on the edit ratio, no threshold. Used
    for tables, and for text when quick_match runs out of time (as the benchmark does after 30 s)."""
    if not gt:
        return []
    if not pred:
        return [Match((g,), ()) for g in range(len(gt))]
    paired = dict(_assign(ned_matrix(gt, pred)))
    return [Match((g,), (paired[g],) if g in paired else ()) for g in range(len(gt))]

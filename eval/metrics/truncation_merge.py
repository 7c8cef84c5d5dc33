"""Step 2 of quick_match: merge runs of consecutive predictions that together make up one GT block.

Reference (Apache-2.0; our own code): OmniDocBench @ 7bd6c2e `utils/match_quick.py` (`deal_with_truncated`,
`judge_pred_merge`, `get_final_subset`, `merge_lists_with_sublists`). A prediction that splits one GT paragraph
into several (a line break the model read as a paragraph break) would otherwise match only its best piece.

For every GT block without a confident partner (edit ratio < 0.25 to some prediction), and every start among
the predictions without one: grow a run of consecutive predictions while (a) the run's edit ratio to the GT does
not rise, (b) every piece is an approximate substring of the GT (windowed ratio <= 0.6, the new one < 0.6), and
stop once the run is longer than the GT. The GT's best run (lowest ratio) is a candidate; overlapping candidates
are resolved per group of overlapping runs by the set of mutually disjoint runs with the lowest mean ratio.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist

CONFIDENT = 0.25
PIECE_IN_GT = 0.6


def ned(a: str, b: str) -> float:
    upper = max(len(a), len(b))
    return Levenshtein.distance(a, b) / upper if upper else 0.0


def ned_matrix(gt: Sequence[str], pred: Sequence[str]) -> np.ndarray:
    """Edit ratio of every (GT, prediction) pair; 0 for two empty strings."""
    if not gt or not pred:
        return np.zeros((len(gt), len(pred)))
    return np.asarray(cdist(gt, pred, scorer=Levenshtein.normalized_distance, workers=1), dtype=np.float64)


def piece_in_gt(gt: str, piece: str) -> float | None:
    """Lowest edit ratio of `piece` against any same-length window of `gt`; None when the piece is longer."""
    n = len(piece)
    if not 0 < n <= len(gt):
        return None
    return min(Levenshtein.distance(gt[i:i + n], piece) for i in range(len(gt) - n + 1)) / n


def _extends(gt: str, run: list[str]) -> tuple[bool, bool]:
    """(the run's last piece may join, the run may grow further) - the benchmark's judge_pred_merge."""
    if ned(gt, " ".join(run)) > ned(gt, " ".join(run[:-1])):
        return False, False
    earlier = [piece_in_gt(gt, p) for p in run[:-1]]
    if any(d is None or d > PIECE_IN_GT for d in earlier):
        return False, False
    last = piece_in_gt(gt, run[-1])
    if last is None:
        return False, False
    return last < PIECE_IN_GT, len(" ".join(run)) <= len(gt)


def _best_run(gt: str, pred: Sequence[str], starts: list[int], confident: set[int]) -> tuple[list[int], float] | None:
    runs, costs = [], []
    for start in starts:
        length = 1
        while start + length < len(pred) and start + length not in confident:
            joins, grows = _extends(gt, list(pred[start:start + length + 1]))
            if not joins:
                break
            length += 1
            if not grows:
                break
        runs.append(list(range(start, start + length)))
        costs.append(ned(gt, " ".join(pred[start:start + length])))
    if not runs:
        return None
    k = costs.index(min(costs))
    return runs[k], costs[k]


def _disjoint_best(group: list[tuple[list[int], float]]) -> list[list[int]]:
    """Among overlapping runs, the benchmark's path search: runs are added to every path they do not overlap (a
    run with the same start as one in the path replaces it when cheaper); the path of lowest mean cost wins."""
    paths: list[list[tuple[list[int], float]]] = [[group[0]]]
    for run in group[1:]:
        new_path = True
        for path in paths:
            overlaps = same = False
            i = 0
            while i < len(path):  # the path may change while it is scanned, as in the benchmark
                item = path[i]
                if item[0] == run[0]:
                    overlaps = same = True
                    if item[1] > run[1]:
                        path.pop(i)
                        path.append(run)
                elif set(item[0]) & set(run[0]):
                    overlaps = True
                i += 1
            if not overlaps:
                path.append(run)
                new_path = False
            if same:
                new_path = False
        if new_path:
            paths.append([run])
    best = min(paths, key=lambda p: sum(c for _, c in p) / len(p))  # first of equal means
    return [r for r, _ in best]


def _final_runs(candidates: list[tuple[list[int], float]]) -> list[list[int]]:
    ordered = sorted(candidates, key=lambda c: c[0][0])
    groups: list[list[tuple[list[int], float]]] = [[ordered[0]]]
    for cand in ordered[1:]:  # a candidate overlapping any member of the current group joins it
        if any(set(cand[0]) & set(member[0]) for member in groups[-1]):
            groups[-1].append(cand)
        else:
            groups.append([cand])
    return [r for g in groups for r in ([g[0][0]] if len(g) == 1 else _disjoint_best(g))]


def merge_truncated(cost: np.ndarray, gt: Sequence[str], pred: Sequence[str]) -> tuple[np.ndarray, list]:
    """(cost matrix over the merged predictions, their index list: an int, or a list of consecutive ints)."""
    confident_rows, confident_cols = (set(int(x) for x in a) for a in np.nonzero(cost < CONFIDENT))
    starts = [j for j in range(cost.shape[1]) if j not in confident_cols]
    candidates = []
    for g in range(cost.shape[0]):
        if g in confident_rows:
            continue
        best = _best_run(gt[g], pred, starts, confident_cols)
        if best is not None:
            candidates.append(best)
    if not candidates:
        return cost, list(range(len(pred)))
    merged: list = list(range(len(pred)))
    for run in _final_runs(candidates):
        at = merged.index(run[0])
        del merged[at:at + len(run)]
        merged.insert(at, run)
    lines = [" ".join(pred[r[0]:r[-1] + 1]) if isinstance(r, list) else pred[r] for r in merged]
    return ned_matrix(list(gt), lines), merged

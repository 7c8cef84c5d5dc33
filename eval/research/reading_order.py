"""The reading-order score of a flow-query path: does query order follow raster order or the page's reading order?

Input: one view's flow attention, (layers, n_queries, n_visual) (eval/research/flow_analysis.py), and per visual
token its place in the ground-truth reading order (eval/research/reading_order_pages.py). Per layer, and for the
attention averaged over layers ("mean"), each query is placed on the visual token it attends to:

- `argmax`: the token with the largest weight;
- `centroid`: the token nearest to the attention-weighted mean (row, column) of the visual tokens (weights
  renormalised over the visual tokens: the rest of a row goes to earlier queries).

The path is the query-ordered list of those tokens. Its figures:

- `tau_raster`: Kendall tau-b of query index vs the token's raster index, over all queries. 1: the queries read
  the page in raster order; -1: backwards; 0: no monotone relation.
- `tau_reading`: Kendall tau-b of query index vs the token's reading key, over the queries whose token lies on
  an ordered block. The key is (the block's rank in the ground-truth reading order, then the token's raster index
  within the block): lines inside a block are read in raster order, blocks in their annotated order. On a
  one-column page with one block per line both taus agree; on a two-column page reading column by column gives
  tau_reading = 1 and tau_raster < 1.
- `monotone_raster` / `monotone_reading`: the share of steps query i -> i + 1 that do not go backwards in raster
  order / in the reading key (steps between two tokens on blocks).
- `jumps` and `jump_rate`: steps to a token more than one cell away (Chebyshev distance > 1), and their share of
  the steps. A raster path jumps once per grid line (the line wrap).
- `visited`: distinct tokens on the path / visual tokens.
- `covered`: share of queries whose token lies on an ordered block (what tau_reading is computed over).

Ties (several queries on one token) are what tau-b is for; a figure that is undefined (fewer than two queries
on blocks, or every query on one token) is NaN, and NaN is left out of means.
"""

from __future__ import annotations

import math

import torch

PATHS = ("argmax", "centroid")
FIGURES = ("tau_raster", "tau_reading", "monotone_raster", "monotone_reading", "jumps", "jump_rate", "visited",
           "covered")


def kendall_tau(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kendall tau-b of two 1-D sequences (ties allowed); NaN when either has no untied pair."""
    x, y = x.double().flatten(), y.double().flatten()
    if x.numel() < 2:
        return math.nan
    dx = torch.sign(x[:, None] - x[None, :])
    dy = torch.sign(y[:, None] - y[None, :])
    # Each unordered pair appears twice in the full matrices, so the factors of 2 cancel.
    untied_x, untied_y = float((dx != 0).sum()), float((dy != 0).sum())
    if untied_x == 0 or untied_y == 0:
        return math.nan
    return float((dx * dy).sum()) / math.sqrt(untied_x * untied_y)


def centroids(attention: torch.Tensor, side: int) -> torch.Tensor:
    """(..., n_q, n_visual) -> (..., n_q, 2) attention-weighted mean (row, column) over the visual grid."""
    weights = attention.double()
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-30)
    idx = torch.arange(attention.shape[-1], device=attention.device)
    rows, cols = (idx // side).double(), (idx % side).double()
    return torch.stack([weights @ rows, weights @ cols], -1)


def attended_tokens(attention: torch.Tensor, side: int, path: str = "argmax") -> torch.Tensor:
    """(..., n_q, n_visual) -> (..., n_q) raster index of the token each query is placed on (see module doc)."""
    if path == "argmax":
        return attention.argmax(-1)
    if path == "centroid":
        rc = centroids(attention, side).round().long().clamp(0, side - 1)
        return rc[..., 0] * side + rc[..., 1]
    raise ValueError(f"unknown path {path!r}; choose from {PATHS}")


def _share(mask: torch.Tensor) -> float:
    return float(mask.double().mean()) if mask.numel() else math.nan


def path_figures(tokens: torch.Tensor, side: int, reading_key: torch.Tensor | None = None) -> dict[str, float]:
    """Figures of one path: `tokens` (n_q,) raster indices in query order; `reading_key` (n_visual,) per token
    its reading key (see module doc), -1 off every ordered block; None: no ground truth (reading figures NaN)."""
    tokens = tokens.long().cpu()
    n_q, n_visual = tokens.numel(), side * side
    order = torch.arange(n_q)
    rows, cols = tokens // side, tokens % side
    step = torch.maximum((rows[1:] - rows[:-1]).abs(), (cols[1:] - cols[:-1]).abs())
    jumps = int((step > 1).sum())
    out = {"tau_raster": kendall_tau(order, tokens),
           "monotone_raster": _share(tokens[1:] >= tokens[:-1]),
           "jumps": float(jumps), "jump_rate": jumps / (n_q - 1) if n_q > 1 else math.nan,
           "visited": len(set(tokens.tolist())) / n_visual,
           "tau_reading": math.nan, "monotone_reading": math.nan, "covered": math.nan}
    if reading_key is not None:
        key = reading_key.long().cpu()[tokens]
        on = key >= 0
        both = on[1:] & on[:-1]
        out.update(tau_reading=kendall_tau(order[on], key[on]),
                   monotone_reading=_share((key[1:] >= key[:-1])[both]), covered=_share(on))
    return out


def view_figures(attention: torch.Tensor, reading_key: torch.Tensor | None = None) -> dict[str, dict]:
    """attention (layers, n_q, n_visual) of one view -> {layer ("0", "1", ..., "mean"): {path: figures}}."""
    n_visual = attention.shape[-1]
    side = math.isqrt(n_visual)
    if side * side != n_visual:
        raise ValueError(f"the visual tokens of a view form a square grid, got {n_visual}")
    maps = {str(i): attention[i] for i in range(attention.shape[0])}
    maps["mean"] = attention.mean(0)
    return {layer: {path: path_figures(attended_tokens(a, side, path), side, reading_key) for path in PATHS}
            for layer, a in maps.items()}


def query_places(attention: torch.Tensor) -> dict[str, list]:
    """Where every query attends, per layer: attention (layers, n_q, n_visual) -> {"argmax": [layers][n_q] raster
    indices, "centroid": [layers][n_q] (row, column)}."""
    side = math.isqrt(attention.shape[-1])
    places = centroids(attention, side).tolist()
    return {"argmax": attention.argmax(-1).tolist(),
            "centroid": [[[round(r, 3), round(c, 3)] for r, c in layer] for layer in places]}

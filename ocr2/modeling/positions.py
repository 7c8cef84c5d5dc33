"""Position schemes of DeepEncoder V2: the ablation axis beside the mask (`model.encoder.*`).

The release gives `[visual ; queries]` sequential 1-D RoPE positions 0..n_v+n_q-1, so query i and visual token i
sit at a fixed relative offset n_v: a raster correspondence between queries and visual tokens is the easiest thing
to learn, whatever the mask. These options move that prior:

| `visual_positions` | visual token j (of an s x s grid)                                                  |
|--------------------|------------------------------------------------------------------------------------|
| `raster` (release) | j (1-D, raster order)                                                              |
| `2d`               | (row j // s, column j % s): 2-D RoPE, half the frequencies turn with the row, half |
|                    | with the column                                                                    |

| `query_positions`     | query i; `start` = one past the largest visual position (n_v for raster, s for 2d) |
|-----------------------|------------------------------------------------------------------------------------|
| `sequential` (release)| start + i                                                                          |
| `shared`              | start for every query: RoPE cannot tell queries apart, only the mask orders them  |
| `2d`                  | (row start + i // s, column i % s): the queries as further rows of the view's grid |

`shuffle_visual` (training only) puts each sample's visual tokens in a random order in the sequence, over the
same position slots, so an encoder position no longer says where on the page a token is (the vision tokenizer's
own absolute position embedding still does). Kept visual outputs (masks that keep visual tokens) are put back in
raster order, so the option changes the encoder's input order only, never what order the decoder reads.

Positions are two axes per token, (row, column); a 1-D scheme sets both to the same number, and then the 2-D
rotation is exactly 1-D RoPE (every frequency turns by the same position). Only q and k change, so every
attention backend runs every scheme unchanged.
"""

from __future__ import annotations

import math

import torch

VISUAL_POSITIONS = ("raster", "2d")
QUERY_POSITIONS = ("sequential", "shared", "2d")
OFFICIAL = ("raster", "sequential")


def check_schemes(visual: str, query: str) -> None:
    if visual not in VISUAL_POSITIONS:
        raise ValueError(f"unknown encoder visual_positions {visual!r}; choose from {VISUAL_POSITIONS}")
    if query not in QUERY_POSITIONS:
        raise ValueError(f"unknown encoder query_positions {query!r}; choose from {QUERY_POSITIONS}")


def _side(n_visual: int) -> int:
    side = math.isqrt(n_visual)
    if side * side != n_visual:
        raise ValueError(f"2-D positions need a square grid of visual tokens, got {n_visual}")
    return side


def encoder_positions(n_visual: int, n_query: int, visual: str = "raster", query: str = "sequential",
                      device: torch.device | str | None = None) -> torch.Tensor:
    """(n_visual + n_query, 2) integer (row, column) positions of `[visual ; queries]` under the two schemes."""
    check_schemes(visual, query)
    j = torch.arange(n_visual, device=device)
    if visual == "raster":
        vis = torch.stack([j, j], -1)
        start = n_visual
    else:
        side = _side(n_visual)
        vis = torch.stack([j // side, j % side], -1)
        start = side
    i = torch.arange(n_query, device=device)
    if query == "sequential":
        qry = torch.stack([start + i, start + i], -1)
    elif query == "shared":
        qry = torch.full((n_query, 2), start, device=device, dtype=torch.long)
    else:
        side = _side(n_visual)
        qry = torch.stack([start + i // side, i % side], -1)
    return torch.cat([vis, qry])


def axial_rope(rotary, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (1, 1, L, head_dim) for (L, 2) positions from a 1-D `RotaryEmbedding`: frequency f turns with
    the row when f is even and with the column when f is odd, so both axes get the whole frequency range."""
    cos_r, sin_r = rotary(positions[:, 0], dtype)
    cos_c, sin_c = rotary(positions[:, 1], dtype)
    half = cos_r.shape[-1] // 2
    row_axis = (torch.arange(cos_r.shape[-1], device=cos_r.device) % half) % 2 == 0  # rotate-half: f, f + d/2
    return torch.where(row_axis, cos_r, cos_c), torch.where(row_axis, sin_r, sin_c)


def encoder_rope(rotary, n_visual: int, n_query: int, visual: str, query: str, dtype: torch.dtype,
                 device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of `[visual ; queries]`; the release's schemes take the plain 1-D path (bit for bit as before)."""
    if (visual, query) == OFFICIAL:
        return rotary(torch.arange(n_visual + n_query, device=device), dtype)
    return axial_rope(rotary, encoder_positions(n_visual, n_query, visual, query, device), dtype)


def random_raster_order(batch: int, n_visual: int, device) -> torch.Tensor:
    """(batch, n_visual): a random permutation of the visual tokens per sample (the global torch RNG, so a
    seeded run draws the same orders)."""
    return torch.rand(batch, n_visual, device=device).argsort(-1)

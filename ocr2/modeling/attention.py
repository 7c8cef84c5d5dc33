"""One attention entry point for the encoder and the decoder, over interchangeable backends.

Shapes: q (B, H, Lq, D); k, v (B, Hkv, Lk, D) with H a multiple of Hkv (grouped-query attention).

Backends
- `eager`: explicit softmax(q k^T * scale + additive mask); the numerical reference. The mask is an additive
  float tensor (0 keep, finfo.min block) — never a boolean added as 0/1.
- `sdpa`: torch's scaled_dot_product_attention with a dense boolean mask built (vectorised) from the spec.
- `sdpa_split`: the encoder's hybrid mask as two mask-free calls (ARCHITECTURE.md "Attention without an n²
  mask"): visual rows × visual keys (non-causal, or causal for raster variants), then query rows × all keys,
  causal aligned to the bottom-right corner. No (L, L) mask is materialised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

from ocr2.modeling.masks import MaskSpec

BACKENDS = ("eager", "sdpa", "sdpa_split")


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def eager_attention(q, k, v, mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """mask: boolean "may attend", broadcastable to (B, H, Lq, Lk), or None."""
    n_rep = q.shape[1] // k.shape[1]
    k, v = _repeat_kv(k, n_rep), _repeat_kv(v, n_rep)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask is not None:
        additive = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
        additive.masked_fill_(~mask, torch.finfo(scores.dtype).min)
        scores = scores + additive
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v)


def _sdpa(q, k, v, mask=None, is_causal=False, scale=None) -> torch.Tensor:
    gqa = q.shape[1] != k.shape[1]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale,
                                          enable_gqa=gqa)


def _dense(q, k, v, mask, backend: str, scale: float) -> torch.Tensor:
    if backend == "eager":
        return eager_attention(q, k, v, mask, scale)
    return _sdpa(q, k, v, mask=mask, scale=scale)


def encoder_attention(q, k, v, spec: MaskSpec, n_visual: int, backend: str = "sdpa",
                      scale: float | None = None) -> torch.Tensor:
    """Self-attention over one view's `[visual ; queries]` sequence under a reading-order mask spec."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose from {BACKENDS}")
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    length = q.shape[2]
    split = spec.split_form() if backend == "sdpa_split" and spec.use_queries else None
    if split is None:
        if backend == "sdpa_split" and not spec.use_queries and spec.visual_to_visual in ("full", "causal"):
            return _sdpa(q, k, v, is_causal=spec.visual_to_visual == "causal", scale=scale)
        idx = torch.arange(length, device=q.device)
        mask = spec.allowed(idx[:, None], idx[None, :], n_visual)
        return _dense(q, k, v, mask, "eager" if backend == "eager" else "sdpa", scale)

    visual_rule, query_rule = split
    out_v = _sdpa(q[:, :, :n_visual], k[:, :, :n_visual], v[:, :, :n_visual],
                  is_causal=visual_rule == "causal", scale=scale)
    q_rows = q[:, :, n_visual:]
    bias = causal_lower_right(q_rows.shape[2], length) if query_rule == "causal" else None
    out_q = _sdpa(q_rows, k, v, mask=bias, scale=scale)
    return torch.cat([out_v, out_q], dim=2)


def causal_attention(q, k, v, key_mask: torch.Tensor | None = None, backend: str = "sdpa",
                     scale: float | None = None, sequence_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Decoder self-attention: causal, aligned bottom-right (the last query is the newest token, so a
    KV cache of earlier tokens just lengthens k, v), plus an optional key padding mask (B, Lk) bool.

    `sequence_ids` (B, L) marks packed samples (no cache): a token attends only within its own sample,
    so several samples share one row without seeing each other."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose from {BACKENDS}")
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    lq, lk = q.shape[2], k.shape[2]
    if sequence_ids is not None:
        if lq != lk:
            raise ValueError("packed sequences (sequence_ids) cannot be combined with a KV cache")
        pos = torch.arange(lk, device=q.device)
        same = sequence_ids[:, :, None] == sequence_ids[:, None, :]
        mask = ((pos[None, :] <= pos[:, None])[None] & same) | torch.eye(lk, dtype=torch.bool, device=q.device)
        if key_mask is not None:
            mask = mask & (key_mask[:, None, :].bool() | torch.eye(lk, dtype=torch.bool, device=q.device))
        return _dense(q, k, v, mask[:, None], backend, scale)
    if key_mask is None and backend != "eager":
        if lq == lk:
            return _sdpa(q, k, v, is_causal=True, scale=scale)
        if lq == 1:
            return _sdpa(q, k, v, scale=scale)
    qpos = torch.arange(lk - lq, lk, device=q.device)
    kpos = torch.arange(lk, device=q.device)
    mask = (kpos[None, :] <= qpos[:, None])[None, None]
    if key_mask is not None:
        # Padding keys are hidden; a padding query still sees itself so that no row is empty (an empty
        # row is NaN in SDPA, and NaN values leak through 0-probability products into real rows).
        own = (kpos[None, :] == qpos[:, None])[None, None]
        mask = mask & (key_mask[:, None, None, :].bool() | own)
    return _dense(q, k, v, mask, backend, scale)

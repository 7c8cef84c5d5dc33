"""Attention with SAM's decomposed relative-position bias, without materialising the (L, L) bias.

The SAM tokenizer's score for query (i, j) and key (m, l) of an (h, w) grid is
    s = (q . k) / sqrt(d) + rel_h[(i, j), m] + rel_w[(i, j), l],
with `rel_h` (L, h) and `rel_w` (L, w) computed from the query (MViTv2). Handing SDPA a dense (L, L) bias that
requires grad forces its math path: for the 64x64 grid of a 1024² view that is several 4096² tensors per head
(scores, bias, probabilities, their gradients), all streamed through main memory.

On CPU in fp32/fp64 the kernel below walks blocks of query rows small enough to stay in cache: forward runs SDPA's
fused kernel on each block with only that block's (rows, L) bias built, and backward recomputes each block's
probabilities (flash-attention style) to get the gradients of q, k, v, rel_h and rel_w. Same function, O(L * (d +
h + w)) memory between forward and backward instead of O(L²). Elsewhere (CUDA, low precision) SDPA with the dense
bias is used: its fused kernels take an additive bias and its gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Block sizes, measured on a 2-core CPU over the 64x64 global grid, the 48x48 crops and the 14x14 windows. Forward:
# about 2^18 scores per batch-head per SDPA call (its fused kernel tiles further itself). Backward: about 2^20 scores
# per block across the whole batch (4 MiB of fp32, so the block's scores stay in cache between its ~10 ops).
_FORWARD_SCORES = 1 << 18
_BACKWARD_SCORES = 1 << 20


def rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor,
                      rel_w: torch.Tensor) -> torch.Tensor:
    """q, k, v (B, H, L, D) over an (h, w) grid (L = h * w, row-major); rel_h (B, H, L, h), rel_w (B, H, L, w).
    Returns softmax(q k^T / sqrt(D) + rel_h[.., m] + rel_w[.., l]) v, shape (B, H, L, D)."""
    b, n, length, d = q.shape
    h, w = rel_h.shape[-1], rel_w.shape[-1]
    if h * w != length:
        raise ValueError(f"grid {h}x{w} does not match {length} tokens")
    if q.device.type != "cpu" or q.dtype not in (torch.float32, torch.float64):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=_bias(rel_h, rel_w))
    flat = lambda t: t.reshape(b * n, length, t.shape[-1])  # noqa: E731
    out = _BlockedRelPosAttention.apply(flat(q), flat(k), flat(v), flat(rel_h), flat(rel_w))
    return out.view(b, n, length, d)


def _bias(rel_h: torch.Tensor, rel_w: torch.Tensor) -> torch.Tensor:
    """(..., rows, h) and (..., rows, w) -> the dense bias (..., rows, h * w)."""
    return (rel_h[..., :, None] + rel_w[..., None, :]).flatten(-2)


def _row_blocks(length: int, scores: int):
    """Slices of query rows, each about `scores` scores (rows x length), at least 8 rows."""
    rows = max(8, min(length, scores // length))
    return [slice(start, min(start + rows, length)) for start in range(0, length, rows)]


class _BlockedRelPosAttention(torch.autograd.Function):
    """Forward: SDPA's fused CPU kernel per block of query rows, with only that block's bias materialised.
    Backward: per block, recompute the probabilities (each block holds whole rows, so a plain softmax), then
    dS = P * (dP - rowsum(dO * O)) gives dq, dk, and the two bias gradients as row / column sums of dS."""

    @staticmethod
    def forward(ctx, q, k, v, rel_h, rel_w):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        out = torch.empty_like(q)
        for sl in _row_blocks(q.shape[1], _FORWARD_SCORES):
            # 4-D operands: SDPA's fused CPU kernel takes (batch, heads, L, D) only (3-D falls back to its math path).
            out[:, sl] = F.scaled_dot_product_attention(q[None, :, sl], k[None], v[None],
                                                        attn_mask=_bias(rel_h[None, :, sl], rel_w[None, :, sl]))[0]
        ctx.save_for_backward(q, k, v, rel_h, rel_w, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, rel_h, rel_w, out = ctx.saved_tensors
        batch, length, d = q.shape
        h, w = rel_h.shape[-1], rel_w.shape[-1]
        scale = d ** -0.5
        grad_out = grad_out.contiguous()
        delta = (grad_out * out).sum(dim=-1, keepdim=True)  # rowsum(dO * O) = rowsum(P * dP)
        qs, kt, vt = q * scale, k.transpose(1, 2), v.transpose(1, 2)
        dq = torch.empty_like(q)
        dk, dv = torch.zeros_like(k), torch.zeros_like(v)
        d_rel_h, d_rel_w = torch.empty_like(rel_h), torch.empty_like(rel_w)
        for sl in _row_blocks(length, _BACKWARD_SCORES // batch):
            s = torch.bmm(qs[:, sl], kt)
            s.view(batch, -1, h, w).add_(rel_h[:, sl, :, None]).add_(rel_w[:, sl, None, :])
            p = torch.softmax(s, dim=-1)
            g = grad_out[:, sl]
            dv.baddbmm_(p.transpose(1, 2), g)
            ds = torch.bmm(g, vt).sub_(delta[:, sl]).mul_(p)  # d(scores)
            grid = ds.view(batch, -1, h, w)
            d_rel_h[:, sl] = grid.sum(dim=-1)
            d_rel_w[:, sl] = grid.sum(dim=-2)
            dq[:, sl] = torch.bmm(ds, k)
            dk.baddbmm_(ds.transpose(1, 2), qs[:, sl])
        return dq.mul_(scale), dk, dv, d_rel_h, d_rel_w

"""Attention with SAM's decomposed relative-position bias, without materialising the (L, L) bias.

The SAM tokenizer's score for query (i, j) and key (m, l) of an (h, w) grid is
    s = (q . k) / sqrt(d) + rel_h[(i, j), m] + rel_w[(i, j), l],
with `rel_h` (L, h) and `rel_w` (L, w) computed from the query (MViTv2). Handing SDPA a dense (L, L) bias that
requires grad forces its math path: for the 64x64 grid of a 1024² view that is several 4096² tensors per head
(scores, bias, probabilities, their gradients), all streamed through main memory.

On CPU in fp32/fp64 the kernel below walks blocks of query rows (of one or several batch-heads), each block's scores
in one reused buffer, and keeps the per-row log-sum-exp from forward (O(L)) so backward gets the probabilities as
one exp of recomputed scores (flash-attention style). Memory between forward and backward is O(L * (d + h + w))
instead of O(L²). Elsewhere (CUDA, low precision) SDPA with the dense bias is used: its fused kernels take an
additive bias and its gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Scores per block, measured on the 2-core CPU (1 and 2 threads). Short sequences (the 14x14 windows) group whole
# batch-heads, about 2^19 scores (2 MiB of fp32: 13 windows' heads) so a block's passes stay in L2/L3. Long ones
# (the 64x64 and 48x48 global grids) take blocks of rows of one head, about 2^21 scores (512 rows of a 4096-token
# grid): as fast as 2^19 on one thread, and with fewer, larger ops per head they lose less time to thread
# synchronisation on two (2x less in fwd+bwd when the cores are shared with other jobs).
_HEAD_BLOCK_SCORES = 1 << 19
_ROW_BLOCK_SCORES = 1 << 21

# Scores are kept in base 2: torch's CPU exp2 runs ~3.5x faster than its exp here (2.8 vs 0.8 G fp32 elements/s,
# torch 2.13, AVX-512), and the change of base is free, folded into the (rows, d) query block and the (rows, h + w)
# bias factors. Both are accurate to about an ulp (the fp64 tests hold to 1e-12).
_LOG2E = 1.0 / math.log(2.0)


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


def rel_pos_factors(q_grid: torch.Tensor, table_h: torch.Tensor,
                    table_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q_grid (B, H, h, w, D), table_h (h, h, D), table_w (w, w, D) -> rel_h (B, H, h, w, h), rel_w (B, H, h, w, w):
    rel_h[.., i, j, m] = q[.., i, j] . table_h[i, m] and rel_w[.., i, j, l] = q[.., i, j] . table_w[j, l].

    The same two einsums as written out, but backward keeps `q_grid` itself: autograd's einsum keeps a permuted
    copy of the query per factor (the contraction batches over the grid axis), two query-sized tensors per block
    (51 MiB for a 1024² view and two crops at width 768). Given the contiguous query the attention kernel keeps,
    this keeps nothing new."""
    return _RelPosFactors.apply(q_grid, table_h, table_w)


class _RelPosFactors(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q_grid, table_h, table_w):
        ctx.save_for_backward(q_grid, table_h, table_w)
        return (torch.einsum("bnhwd,hmd->bnhwm", q_grid, table_h),
                torch.einsum("bnhwd,wld->bnhwl", q_grid, table_w))

    @staticmethod
    def backward(ctx, grad_h, grad_w):
        q, table_h, table_w = ctx.saved_tensors
        grad_q = grad_table_h = grad_table_w = None
        if ctx.needs_input_grad[0]:
            grad_q = torch.einsum("bnhwm,hmd->bnhwd", grad_h, table_h)
            grad_q += torch.einsum("bnhwl,wld->bnhwd", grad_w, table_w)
        if ctx.needs_input_grad[1]:
            grad_table_h = torch.einsum("bnhwm,bnhwd->hmd", grad_h, q)
        if ctx.needs_input_grad[2]:
            grad_table_w = torch.einsum("bnhwl,bnhwd->wld", grad_w, q)
        return grad_q, grad_table_h, grad_table_w


def _bias(rel_h: torch.Tensor, rel_w: torch.Tensor) -> torch.Tensor:
    """(..., rows, h) and (..., rows, w) -> the dense bias (..., rows, h * w)."""
    return (rel_h[..., :, None] + rel_w[..., None, :]).flatten(-2)


def _blocks(batch: int, length: int) -> list[tuple[slice, slice]]:
    """(batch-heads, query rows) slices covering (batch, length). A short sequence groups whole heads, about
    `_HEAD_BLOCK_SCORES` scores per block, so its GEMMs are batched and Python overhead stays small; a long one
    takes one head and about `_ROW_BLOCK_SCORES` scores (at least 8 rows) per block."""
    if length * length <= _HEAD_BLOCK_SCORES:
        heads = _HEAD_BLOCK_SCORES // (length * length)
        return [(slice(s, min(s + heads, batch)), slice(0, length)) for s in range(0, batch, heads)]
    rows = max(8, _ROW_BLOCK_SCORES // length)
    return [(slice(b, b + 1), slice(s, min(s + rows, length))) for b in range(batch) for s in range(0, length, rows)]


class _BlockedRelPosAttention(torch.autograd.Function):
    """Forward, per block: scores written by one GEMM into a buffer that already holds the block's bias (built from
    the two factors), then max, subtract, exp2 and sum in place; the block's output is P~ v / rowsum (normalising
    the (rows, d) output instead of the (rows, L) probabilities). The per-row log-sum-exp is saved.
    Backward, per block: the bias minus the log-sum-exp, plus q k^T, exp2 in place, is P (no softmax reduction);
    dS = P * (dP - rowsum(dO * O)) gives dq, dk, and the two bias gradients as row / column sums of dS."""

    @staticmethod
    def forward(ctx, q, k, v, rel_h, rel_w):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        batch, length, d = q.shape
        h, w = rel_h.shape[-1], rel_w.shape[-1]
        blocks = _blocks(batch, length)
        scale = d ** -0.5 * _LOG2E
        out = torch.empty_like(q)
        lse = q.new_empty(batch, length)  # base 2
        buf = q.new_empty(_largest(blocks) * length)
        for bs, rs in blocks:
            nb, nr = bs.stop - bs.start, rs.stop - rs.start
            grid = buf[:nb * nr * length].view(nb, nr, h, w)
            torch.add((rel_h[bs, rs] * _LOG2E)[..., :, None], (rel_w[bs, rs] * _LOG2E)[..., None, :], out=grid)
            s = grid.view(nb, nr, length).baddbmm_(q[bs, rs] * scale, k[bs].transpose(1, 2))
            m = s.amax(dim=-1, keepdim=True)
            z = s.sub_(m).exp2_().sum(dim=-1, keepdim=True)
            torch.bmm(s, v[bs], out=out[bs, rs]).div_(z)
            lse[bs, rs] = m.squeeze(-1).add_(z.squeeze(-1).log2_())
        ctx.save_for_backward(q, k, v, rel_h, rel_w, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, rel_h, rel_w, out, lse = ctx.saved_tensors
        batch, length, d = q.shape
        h, w = rel_h.shape[-1], rel_w.shape[-1]
        blocks = _blocks(batch, length)
        scale = d ** -0.5
        grad_out = grad_out.contiguous()
        delta = (grad_out * out).sum(dim=-1, keepdim=True)  # rowsum(dO * O) = rowsum(P * dP)
        dq = torch.empty_like(q)
        dk, dv = torch.zeros_like(k), torch.zeros_like(v)
        d_rel_h, d_rel_w = torch.empty_like(rel_h), torch.empty_like(rel_w)
        size = _largest(blocks) * length
        buf, buf2 = q.new_empty(size), q.new_empty(size)
        for bs, rs in blocks:
            nb, nr = bs.stop - bs.start, rs.stop - rs.start
            grid = buf[:nb * nr * length].view(nb, nr, h, w)
            torch.add((rel_h[bs, rs] * _LOG2E).sub_(lse[bs, rs, None])[..., :, None],
                      (rel_w[bs, rs] * _LOG2E)[..., None, :], out=grid)
            p = grid.view(nb, nr, length).baddbmm_(q[bs, rs], k[bs].transpose(1, 2), alpha=scale * _LOG2E).exp2_()
            g = grad_out[bs, rs]
            dv[bs].baddbmm_(p.transpose(1, 2), g)
            ds = torch.bmm(g, v[bs].transpose(1, 2), out=buf2[:nb * nr * length].view(nb, nr, length))
            ds.sub_(delta[bs, rs]).mul_(p)  # d(scores)
            ds_grid = ds.view(nb, nr, h, w)
            torch.sum(ds_grid, dim=-1, out=d_rel_h[bs, rs])
            torch.sum(ds_grid, dim=-2, out=d_rel_w[bs, rs])
            torch.bmm(ds, k[bs], out=dq[bs, rs])
            dk[bs].baddbmm_(ds.transpose(1, 2), q[bs, rs])
        return dq.mul_(scale), dk.mul_(scale), dv, d_rel_h, d_rel_w


def _largest(blocks: list[tuple[slice, slice]]) -> int:
    """Rows (batch-heads x query rows) of the largest block: the size of the reused score buffers."""
    return max((bs.stop - bs.start) * (rs.stop - rs.start) for bs, rs in blocks)

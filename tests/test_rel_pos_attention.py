"""The SAM tokenizer's blocked rel-pos attention kernel equals SDPA with the dense (L, L) bias, gradients included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ocr2.modeling import rel_pos_attention as kernel

TOL = 1e-5


def _inputs(h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shape = (2, 3, h * w)
    q, k, v = (torch.randn(*shape, 8, generator=g) for _ in range(3))
    rel_h, rel_w = torch.randn(*shape, h, generator=g), torch.randn(*shape, w, generator=g)
    return [t.requires_grad_(True) for t in (q, k, v, rel_h, rel_w)]


def _dense(q, k, v, rel_h, rel_w):
    bias = (rel_h[..., :, None] + rel_w[..., None, :]).flatten(-2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def _run(fn, inputs):
    out = fn(*inputs)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    grads = [t.grad.clone() for t in inputs]
    for t in inputs:
        t.grad = None
    return out.detach(), grads


@pytest.mark.parametrize("grid", [(5, 7), (14, 14)])
@pytest.mark.parametrize("block_scores", [64, 1 << 30])  # ragged blocks of 8 rows, or one block
def test_blocked_kernel_equals_dense_bias(monkeypatch, grid, block_scores):
    monkeypatch.setattr(kernel, "_FORWARD_SCORES", block_scores)
    monkeypatch.setattr(kernel, "_BACKWARD_SCORES", block_scores)
    inputs = _inputs(*grid)
    ref, ref_grads = _run(_dense, inputs)
    got, got_grads = _run(kernel.rel_pos_attention, inputs)
    assert (got - ref).abs().max().item() <= TOL
    for name, a, b in zip(("q", "k", "v", "rel_h", "rel_w"), got_grads, ref_grads):
        assert (a - b).abs().max().item() <= TOL, name


def test_grid_must_match_the_sequence():
    q, k, v, rel_h, rel_w = _inputs(4, 4)
    with pytest.raises(ValueError, match="grid"):
        kernel.rel_pos_attention(q, k, v, rel_h[..., :3], rel_w)

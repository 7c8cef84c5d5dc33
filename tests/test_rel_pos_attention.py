"""The SAM tokenizer's blocked rel-pos attention kernel equals eager attention with the dense (L, L) bias, gradients
included, and keeps only O(L) per batch-head for backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ocr2.modeling import rel_pos_attention as kernel

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _inputs(h: int, w: int, dtype=torch.float32, batch: int = 2, heads: int = 3, d: int = 8, seed: int = 0,
            q_scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, heads, h * w)
    q, k, v = (torch.randn(*shape, d, generator=g, dtype=dtype) for _ in range(3))
    rel_h, rel_w = torch.randn(*shape, h, generator=g, dtype=dtype), torch.randn(*shape, w, generator=g, dtype=dtype)
    return [t.requires_grad_(True) for t in (q * q_scale, k, v, rel_h, rel_w)]


def _eager(q, k, v, rel_h, rel_w):
    """The definition: softmax(q k^T / sqrt(d) + rel_h[.., m] + rel_w[.., l]) v, every tensor dense."""
    bias = (rel_h[..., :, None] + rel_w[..., None, :]).flatten(-2)
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + bias
    return torch.softmax(scores, dim=-1) @ v


def _run(fn, inputs):
    out = fn(*inputs)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad((out * weights).sum(), inputs)
    return out.detach(), grads


def _assert_close(got, ref, tol):
    out, grads = got
    ref_out, ref_grads = ref
    assert (out - ref_out).abs().max().item() <= tol, "output"
    for name, a, b in zip(("q", "k", "v", "rel_h", "rel_w"), grads, ref_grads):
        assert (a - b).abs().max().item() <= tol, name


# Block budgets (scores per block: grouped heads, rows of one head) that exercise each way of cutting: "rows" gives
# blocks of 8 rows, the last ragged (35 and 36 tokens are not multiples of 8); "heads" groups 4 whole batch-heads
# per block, so 6 batch-heads end in a ragged group of 2; "one" is one block for everything.
BUDGETS = {"rows": lambda length: (64, 64), "heads": lambda length: (4 * length * length, 0),
           "one": lambda length: (1 << 30, 1 << 30)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("grid", [(5, 7), (9, 4), (14, 14)], ids=["5x7", "9x4", "14x14"])
@pytest.mark.parametrize("budget", list(BUDGETS))
def test_blocked_kernel_equals_dense_bias(monkeypatch, dtype, grid, budget):
    head_scores, row_scores = BUDGETS[budget](grid[0] * grid[1])
    monkeypatch.setattr(kernel, "_HEAD_BLOCK_SCORES", head_scores)
    monkeypatch.setattr(kernel, "_ROW_BLOCK_SCORES", row_scores)
    inputs = _inputs(*grid, dtype=dtype)
    _assert_close(_run(kernel.rel_pos_attention, inputs), _run(_eager, inputs), TOL[dtype])


def test_large_scores_do_not_overflow():
    """Scores in the hundreds (exp would overflow fp32 without the row max) still match the fp64 definition."""
    inputs = _inputs(6, 5, q_scale=60.0)
    ref = _run(_eager, [t.detach().double().requires_grad_(True) for t in inputs])
    got = _run(kernel.rel_pos_attention, inputs)
    assert got[0].abs().max().item() < 10  # finite, no NaN
    _assert_close(got, [ref[0].float(), [g.float() for g in ref[1]]], 2e-3)


def _kept_tensors(out: torch.Tensor) -> list[torch.Tensor]:
    """Every tensor the autograd graph behind `out` keeps: saved tensors, and tensors stashed on a node (a custom
    Function's ctx) as attributes."""
    kept, seen, stack = [], set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        kept += [t for t in getattr(node, "saved_tensors", ()) if isinstance(t, torch.Tensor)]
        kept += [t for t in getattr(node, "__dict__", {}).values() if isinstance(t, torch.Tensor)]
        stack += [nxt for nxt, _ in node.next_functions]
    return kept


def test_backward_keeps_linear_memory():
    """Between forward and backward the kernel keeps O(L * (d + h + w)) per batch-head, never an (L, L) tensor:
    q, k, v, the output (4 d), the two bias factors (h + w) and the log-sum-exp (1)."""
    h, w, d, batch, heads = 32, 32, 8, 1, 2
    length = h * w
    inputs = _inputs(h, w, batch=batch, heads=heads, d=d)
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = kernel.rel_pos_attention(*inputs)
    budget = batch * heads * length * (4 * d + h + w + 1) * 4
    assert sum(storages.values()) <= budget  # one (L, L) fp32 tensor alone would be 2 * 4 MiB here
    assert max(t.numel() for t in _kept_tensors(out)) < length * length


def test_low_precision_uses_sdpa_with_the_dense_bias():
    """Outside fp32/fp64 on CPU (and on CUDA) the kernel defers to SDPA, whose fused kernels take the bias."""
    q, k, v, rel_h, rel_w = (t.detach().bfloat16() for t in _inputs(4, 6))
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=kernel._bias(rel_h, rel_w))
    assert torch.equal(kernel.rel_pos_attention(q, k, v, rel_h, rel_w), want)


def test_grid_must_match_the_sequence():
    q, k, v, rel_h, rel_w = _inputs(4, 4)
    with pytest.raises(ValueError, match="grid"):
        kernel.rel_pos_attention(q, k, v, rel_h[..., :3], rel_w)


def test_the_rel_pos_factors_equal_their_einsums_and_keep_only_the_query():
    from ocr2.modeling.recompute import kept_for_backward

    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 4, 5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    th = torch.randn(4, 4, 8, generator=g, dtype=torch.float64, requires_grad=True)
    tw = torch.randn(5, 5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    gh, gw = torch.randn(2, 3, 4, 5, 4, generator=g, dtype=torch.float64), torch.randn(2, 3, 4, 5, 5, generator=g,
                                                                                      dtype=torch.float64)
    with kept_for_backward() as kept:
        rel_h, rel_w = kernel.rel_pos_factors(q, th, tw)
    assert kept.nbytes() == q.nbytes + th.nbytes + tw.nbytes  # no permuted copy of the query
    got = torch.autograd.grad((rel_h, rel_w), (q, th, tw), (gh, gw))
    ref_h = torch.einsum("bnhwd,hmd->bnhwm", q, th)
    ref_w = torch.einsum("bnhwd,wld->bnhwl", q, tw)
    assert torch.equal(rel_h, ref_h) and torch.equal(rel_w, ref_w)
    ref = torch.autograd.grad((ref_h, ref_w), (q, th, tw), (gh, gw))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)

"""Selective recomputation (ocr2/modeling/recompute.py): what backward keeps, and that gradients do not change."""

from __future__ import annotations

import weakref

import pytest
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ocr2.modeling import recompute
from ocr2.modeling.recompute import kept_for_backward, rebuilt_in_backward
from ocr2.modeling.transformer import SwiGLU
from ocr2.modeling.vision_tokenizer import MLP, ViTBlock


@pytest.fixture(autouse=True)
def rebuild_every_size(monkeypatch):
    """These tests check the rebuilding on tiny tensors, which it leaves alone by default (`MIN_BYTES`)."""
    monkeypatch.setattr(recompute, "MIN_BYTES", 0)


def test_by_default_small_tensors_are_kept_as_they_are(monkeypatch):
    monkeypatch.setattr(recompute, "MIN_BYTES", 1 << 20)
    x = torch.randn(6, 8, requires_grad=True)
    a = torch.tanh(x)
    alive = weakref.ref(a)
    with rebuilt_in_backward((a, lambda: torch.tanh(x))):
        y = F.linear(a, torch.randn(8, 8, requires_grad=True))
    del a
    assert alive() is not None  # 192 bytes: not worth a recipe
    big = torch.randn(512, 1024, requires_grad=True)  # 2 MiB
    b = torch.tanh(big)
    alive = weakref.ref(b)
    with rebuilt_in_backward((b, lambda: torch.tanh(big))):
        y = F.linear(b, torch.randn(8, 1024, requires_grad=True))
    del b
    assert alive() is None
    y.sum().backward()


def _grads(module: torch.nn.Module, x: torch.Tensor, run) -> list[torch.Tensor]:
    module.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    out = run(x)
    out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
    return [x.grad] + [p.grad for p in module.parameters()]


def _plain(module: torch.nn.Module):
    """The same module under saved-tensor hooks that are not ours: rebuilding steps aside, autograd keeps all."""
    def run(x):
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
            return module(x)
    return run


def test_a_rebuilt_tensor_is_not_kept_and_gradients_are_unchanged():
    torch.manual_seed(0)
    x = torch.randn(6, 8, requires_grad=True)
    w1, w2 = torch.randn(16, 8, requires_grad=True), torch.randn(8, 16, requires_grad=True)
    h = F.linear(x, w1)
    a = F.gelu(h)
    alive = weakref.ref(a)
    with rebuilt_in_backward((a, lambda: F.gelu(h))):
        y = F.linear(a, w2)
    del a
    assert alive() is None, "autograd still holds the tensor that was to be rebuilt"
    y.sum().backward()
    got = [x.grad, w1.grad, w2.grad]
    for t in (x, w1, w2):
        t.grad = None
    F.linear(F.gelu(F.linear(x, w1)), w2).sum().backward()
    for g, ref in zip(got, (x.grad, w1.grad, w2.grad)):
        assert torch.equal(g, ref)


def test_sam_mlp_keeps_only_its_input_and_the_pre_activation():
    torch.manual_seed(0)
    mlp = MLP(8, 32)
    x = torch.randn(2, 5, 5, 8, requires_grad=True)
    with kept_for_backward() as kept:
        out = mlp(x)  # noqa: F841 (the graph stays alive while it is counted)
    expected = x.nbytes + 2 * 5 * 5 * 32 * 4 + mlp.lin1.weight.nbytes + mlp.lin2.weight.nbytes
    assert kept.nbytes() == expected


def test_swiglu_keeps_its_input_and_the_two_projections():
    torch.manual_seed(0)
    ffn = SwiGLU(8, 24)
    x = torch.randn(3, 7, 8, requires_grad=True)
    with kept_for_backward() as kept:
        out = ffn(x)  # noqa: F841
    hidden = 3 * 7 * 24 * 4
    weights = sum(p.nbytes for p in ffn.parameters())
    assert kept.nbytes() == x.nbytes + 2 * hidden + weights


@pytest.mark.parametrize("window", [0, 3], ids=["global", "windowed"])
def test_a_sam_block_keeps_less_and_its_gradients_are_bit_identical(window):
    torch.manual_seed(0)
    block = ViTBlock(16, 2, 4.0, 1e-6, window_size=window, grid=7).double()
    x = torch.randn(2, 7, 7, 16, dtype=torch.float64)
    got = _grads(block, x, block)
    ref = _grads(block, x, _plain(block))
    for g, r in zip(got, ref):
        assert torch.equal(g, r)
    with kept_for_backward() as rebuilt:
        out = block(x.clone().requires_grad_())  # noqa: F841
    plain: dict[int, int] = {}

    def record(t):
        plain[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(record, lambda t: t):
        block(x.clone().requires_grad_())
    hidden = 2 * 7 * 7 * 64 * 8  # the GELU output, fp64
    width = 2 * 7 * 7 * 16 * 8  # one (B, h, w, C) activation
    # The rel-pos factors, (B * windows, heads, cells, h + w): global 7x7; windowed 3x3 windows of the grid padded
    # to 9x9, 9 per image.
    factors = 2 * 2 * 49 * 14 * 8 if window == 0 else 18 * 2 * 9 * 6 * 8
    # At least the GELU output, both norm outputs, the attention output's copy for proj and the factors are gone.
    assert sum(plain.values()) - rebuilt.nbytes() >= hidden + 3 * width + factors


def test_inside_a_checkpoint_it_steps_aside():
    torch.manual_seed(0)
    block = ViTBlock(16, 2, 4.0, 1e-6, window_size=0, grid=5).double()
    x = torch.randn(1, 5, 5, 16, dtype=torch.float64)
    got = _grads(block, x, lambda t: checkpoint(block, t, use_reentrant=False))
    ref = _grads(block, x, block)
    for g, r in zip(got, ref):
        assert torch.equal(g, r)
    kept: dict[int, int] = {}

    def record(t):
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    # The checkpoint keeps its input only, whether or not the block asks for rebuilding inside it.
    with torch.autograd.graph.saved_tensors_hooks(record, lambda t: t):
        inp = x.clone().requires_grad_()
        checkpoint(block, inp, use_reentrant=False)
    assert sum(kept.values()) <= inp.nbytes


def test_a_recipe_in_another_layout_is_refused():
    x = torch.randn(4, 6, requires_grad=True)
    w = torch.randn(6, 6, requires_grad=True)
    a = torch.tanh(x)
    with rebuilt_in_backward((a, lambda: torch.tanh(x).t().contiguous().t())):
        y = F.linear(a, w)
    with pytest.raises(RuntimeError, match="strides"):
        y.sum().backward()

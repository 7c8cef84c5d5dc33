"""Windowed SAM attention projects only the real cells and gives the padded cells the qkv bias: the same function,
gradients included, as running the qkv projection over the zero-padded windows (the checkpoint's definition)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from ocr2.modeling.vision_tokenizer import ViTBlock


def _padded_windows_reference(block: ViTBlock, x: torch.Tensor) -> torch.Tensor:
    """The definition: zero-pad the (post-norm1) grid to whole windows, attend within each window as its own grid
    (qkv and proj over every padded cell), crop back."""
    _, h, w, _ = x.shape
    s = block.window_size
    pad_h, pad_w = -h % s, -w % s
    windows = rearrange(F.pad(x, (0, 0, 0, pad_w, 0, pad_h)), "b (nh s1) (nw s2) c -> (b nh nw) s1 s2 c", s1=s, s2=s)
    out = block.attn(windows)  # window_size 0: each window is a whole grid
    out = rearrange(out, "(b nh nw) s1 s2 c -> b (nh s1) (nw s2) c", nh=(h + pad_h) // s, nw=(w + pad_w) // s)
    return out[:, :h, :w]


@pytest.mark.parametrize("grid", [(20, 9), (14, 28), (5, 5)], ids=["ragged", "whole-windows", "one-partial"])
def test_windowed_attention_equals_padded_windows(grid):
    torch.manual_seed(0)
    block = ViTBlock(16, 2, 2.0, 1e-6, window_size=7, grid=14).double()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(std=0.5)  # a large qkv bias: the padded cells' k and v are exactly it
    x = torch.randn(2, *grid, 16, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, *grid, 16, dtype=torch.float64)
    params = [x] + list(block.attn.parameters())

    def run(fn):
        out = fn(x)
        return out.detach(), torch.autograd.grad((out * weights).sum(), params)

    got, got_grads = run(block._windowed_attention)
    ref, ref_grads = run(lambda t: _padded_windows_reference(block, t))
    assert (got - ref).abs().max().item() <= 1e-12
    names = ["x"] + [n for n, _ in block.attn.named_parameters()]
    for name, a, b in zip(names, got_grads, ref_grads):
        assert (a - b).abs().max().item() <= 1e-12, name

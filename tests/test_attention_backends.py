"""Every attention backend equals `eager` (the reference) for the official mask, gradients included."""

from __future__ import annotations

import copy

import pytest
import torch

from ocr2.config import EncoderConfig
from ocr2.modeling.attention import causal_attention, encoder_attention
from ocr2.modeling.encoder import DeepEncoderV2
from ocr2.modeling.masks import get_mask_spec

TOL = 1e-5


def _encoder(backend: str) -> DeepEncoderV2:
    torch.manual_seed(0)
    cfg = EncoderConfig(hidden_size=48, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=96)
    enc = DeepEncoderV2(cfg, {768: 9, 1024: 16}, backend)
    with torch.no_grad():
        for p in enc.parameters():
            p.normal_(std=0.1) if p.dim() > 1 else p.uniform_(0.8, 1.2)
    return enc


def _run(backend: str, visual: torch.Tensor):
    enc = _encoder(backend)
    x = visual.clone().requires_grad_(True)
    out = enc(x, view_size=1024)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    grads = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads


@pytest.mark.parametrize("backend", ["sdpa", "sdpa_split"])
def test_backend_matches_eager_forward(backend):
    visual = torch.randn(2, 16, 48)
    ref, _, _ = _run("eager", visual)
    got, _, _ = _run(backend, visual)
    assert (got - ref).abs().max().item() <= TOL


@pytest.mark.parametrize("backend", ["sdpa", "sdpa_split"])
def test_backend_matches_eager_gradients(backend):
    visual = torch.randn(2, 16, 48)
    _, ref_x, ref_p = _run("eager", visual)
    _, got_x, got_p = _run(backend, visual)
    assert (got_x - ref_x).abs().max().item() <= TOL
    worst = max((got_p[n] - ref_p[n]).abs().max().item() for n in ref_p)
    assert worst <= TOL


@pytest.mark.parametrize("backend", ["sdpa", "sdpa_split"])
def test_kernel_matches_eager_with_more_queries_than_visual_tokens(backend):
    """query_ratio != 1: the bottom-right causal alignment must still give queries every visual token."""
    spec = get_mask_spec("causal_flow")
    q, k, v = torch.randn(1, 4, 5 + 9, 8), torch.randn(1, 2, 14, 8), torch.randn(1, 2, 14, 8)
    ref = encoder_attention(q, k, v, spec, n_visual=5, backend="eager")
    got = encoder_attention(q, k, v, spec, n_visual=5, backend=backend)
    assert (got - ref).abs().max().item() <= TOL


@pytest.mark.parametrize("backend", ["sdpa", "sdpa_split"])
def test_decoder_causal_attention_with_padding_matches_eager(backend):
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8)
    key_mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    ref = causal_attention(q, k, v, key_mask, backend="eager")
    got = causal_attention(q, k, v, key_mask, backend=backend)
    assert torch.isfinite(got).all()
    assert (got[:, :, 2:] - ref[:, :, 2:]).abs().max().item() <= TOL

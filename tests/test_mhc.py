"""Hyper-connections: Sinkhorn constraints, identity at initialisation, bounded composite gain for mHC."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.modeling.mhc import HyperConnection, sinkhorn_knopp


def _random_hc(kind: str, dim: int = 16, n: int = 4, seed: int = 0) -> HyperConnection:
    torch.manual_seed(seed)
    hc = HyperConnection(dim, n, kind)
    with torch.no_grad():
        hc.phi.normal_(std=1.0)
        hc.alpha.fill_(1.0)
        hc.bias.normal_(std=1.0)
    return hc


def test_sinkhorn_rows_and_columns_sum_to_one():
    # 20 iterations reach 1e-6 on columns for moderate logit spreads like these; at unit-variance logits the
    # column error of a few matrices in a thousand is ~1e-4 (the truncation the mHC paper, arXiv 2512.24880,
    # notes in §5.4).
    torch.manual_seed(0)
    m = sinkhorn_knopp(torch.randn(1000, 4, 4) * 0.5)
    assert (m.sum(-1) - 1).abs().max().item() <= 1e-6
    assert (m.sum(-2) - 1).abs().max().item() <= 1e-6


def test_mhc_residual_matrices_are_doubly_stochastic():
    hc = _random_hc("mhc")
    with torch.no_grad():
        hc.alpha.fill_(0.01)  # the initial gating factor: the regime a model trains in
        hc.bias.normal_(std=0.5)
    _, _, res = hc.coefficients(torch.randn(64, 4, 16))
    assert (res.sum(-1) - 1).abs().max().item() <= 1e-6
    assert (res.sum(-2) - 1).abs().max().item() <= 1e-6
    assert (res >= 0).all()


@pytest.mark.parametrize("kind", ["mhc", "hc"])
def test_fresh_hyper_connection_model_equals_plain_residual_model(kind):
    torch.manual_seed(0)
    plain_cfg = OCR2Config.from_preset("tiny")
    plain = OCR2Model(plain_cfg).eval()
    cfg = dataclasses.replace(plain_cfg, encoder=dataclasses.replace(plain_cfg.encoder, residual=kind),
                              decoder=dataclasses.replace(plain_cfg.decoder, residual=kind))
    hyper = OCR2Model(cfg).eval()
    missing, unexpected = hyper.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all("_hc." in k for k in missing)
    views = torch.rand(1, 3, 1024, 1024) * 2 - 1
    ids = torch.tensor([[0] + [cfg.image_token_id] * cfg.image_token_count(0) + [40, 41, 42]])
    assert (hyper(ids, views).logits - plain(ids, views).logits).abs().max().item() <= 1e-5


def _composite_gain(kind: str, layers: int = 64) -> float:
    """Max absolute row sum of the product of H_res over `layers` random layers (forward signal gain)."""
    x = torch.randn(1, 4, 16)
    total = torch.eye(4)
    for layer in range(layers):
        _, _, res = _random_hc(kind, seed=layer).coefficients(x)
        total = res[0].detach() @ total
    return total.abs().sum(-1).max().item()


def test_mhc_composite_gain_stays_bounded_over_64_layers():
    assert _composite_gain("mhc") <= 2.0


def test_unconstrained_hc_composite_gain_grows_over_64_layers():
    assert _composite_gain("hc") > 100 * _composite_gain("mhc")

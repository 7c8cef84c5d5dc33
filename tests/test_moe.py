"""DeepSeekMoE: token-sorted dispatch (per-expert loop and grouped GEMM) equals the straightforward dense form, and
the DeepSeek-V2 sequence-level balance loss is what the paper's formula gives."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ocr2 import OCR2Config, OCR2Model
from ocr2.config import DecoderConfig
from ocr2.modeling.moe import MoE, grouped_mm_supported

TOL = 1e-5


def _moe(**overrides) -> MoE:
    torch.manual_seed(0)
    kwargs = dict(hidden_size=16, n_routed_experts=6, moe_intermediate_size=8, num_experts_per_tok=2,
                  n_shared_experts=1)
    cfg = DecoderConfig(**{**kwargs, **overrides})
    moe = MoE(cfg)
    with torch.no_grad():
        for p in moe.parameters():
            p.normal_(std=0.3)
    return moe


def dense_reference(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, weighted by the routing weights (0 for experts a token did not choose)."""
    cfg, ex = moe.cfg, moe.experts
    flat = x.reshape(-1, x.shape[-1])
    probs = F.linear(flat.float(), moe.gate.weight.float()).softmax(-1)
    weights, idx = probs.topk(cfg.num_experts_per_tok, dim=-1)
    if cfg.norm_topk_prob:
        weights = weights / weights.sum(-1, keepdim=True)
    weights = weights * cfg.routed_scaling_factor
    out = torch.zeros(flat.shape, dtype=torch.float32)
    for e in range(cfg.n_routed_experts):
        y = F.linear(F.silu(F.linear(flat, ex.gate_proj[e])) * F.linear(flat, ex.up_proj[e]), ex.down_proj[e])
        out += (weights * (idx == e)).sum(-1, keepdim=True) * y.float()
    out = out.to(x.dtype).reshape(x.shape)
    return out + moe.shared_experts(x) if moe.shared_experts is not None else out


def _forward_and_grads(moe: MoE, fn, x: torch.Tensor):
    moe.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = fn(x)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    return out.detach(), x.grad, {n: p.grad.clone() for n, p in moe.named_parameters() if p.grad is not None}


DISPATCH = ["loop", "grouped"]


def _set_dispatch(moe: MoE, dispatch: str, x: torch.Tensor) -> None:
    if dispatch == "grouped":
        ex = moe.experts
        if not grouped_mm_supported(x, ex.gate_proj, ex.up_proj, ex.down_proj):
            pytest.skip(f"torch {torch.__version__} has no grouped GEMM for {x.device.type} {x.dtype}")
    moe.experts.grouped = dispatch == "grouped"


@pytest.mark.parametrize("norm_topk", [False, True])
@pytest.mark.parametrize("dispatch", DISPATCH)
def test_token_sorted_dispatch_equals_dense_reference(dispatch, norm_topk):
    moe = _moe(norm_topk_prob=norm_topk, routed_scaling_factor=1.5).eval()
    x = torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(1))
    _set_dispatch(moe, dispatch, x)
    with torch.no_grad():
        assert (moe(x) - dense_reference(moe, x)).abs().max().item() <= TOL


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_token_sorted_dispatch_gradients_equal_dense_reference(dispatch):
    moe = _moe().eval()  # eval: no balance loss, so both sides differentiate the same function
    x = torch.randn(2, 9, 16, generator=torch.Generator().manual_seed(2))
    _set_dispatch(moe, dispatch, x)
    _, ref_x, ref_p = _forward_and_grads(moe, lambda t: dense_reference(moe, t), x)
    _, got_x, got_p = _forward_and_grads(moe, moe, x)
    assert (got_x - ref_x).abs().max().item() <= TOL
    assert ref_p.keys() == got_p.keys()
    assert max((got_p[n] - ref_p[n]).abs().max().item() for n in ref_p) <= TOL


def test_a_single_token_routes_through_only_its_experts():
    """Decoding: one token, k experts active, the rest untouched (no gradient reaches unchosen experts)."""
    moe = _moe().eval()
    moe.experts.grouped = False
    x = torch.randn(1, 1, 16, generator=torch.Generator().manual_seed(3))
    _, _, grads = _forward_and_grads(moe, moe, x)
    touched = (grads["experts.gate_proj"].flatten(1).abs().sum(1) > 0).sum().item()
    assert touched == moe.cfg.num_experts_per_tok


def test_balance_loss_matches_a_hand_computation():
    """Two sequences of 3 tokens, 2 experts, top-1, alpha 0.01 (DeepSeek-V2 Eq. 21-23):
    seq 0: chosen [0, 0, 1] -> f = 2/(1*3) * [2, 1] = [4/3, 2/3]; P = mean probs = [0.6, 0.4]; sum f*P = 16/15
    seq 1: chosen [1, 1, 1] -> f = [0, 2]; P = [0.5, 0.5]; sum f*P = 1
    loss = 0.01 * mean(16/15, 1) = 0.01 * 31/30."""
    moe = _moe(n_routed_experts=2, num_experts_per_tok=1, aux_loss_alpha=0.01)
    probs = torch.tensor([[[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]], [[0.5, 0.5]] * 3])
    idx = torch.tensor([[[0], [0], [1]], [[1], [1], [1]]])
    assert abs(moe.balance_loss(probs, idx).item() - 0.01 * 31 / 30) <= 1e-7


def test_forward_records_the_balance_loss_of_its_own_routing():
    moe = _moe(aux_loss_alpha=0.02).train()
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(4))
    moe(x)
    probs = F.linear(x.float(), moe.gate.weight.float()).softmax(-1)  # (B, T, E)
    idx = probs.topk(2, dim=-1).indices
    e, k, t = 6, 2, 5
    f = F.one_hot(idx, e).sum(dim=(1, 2)).float() * e / (k * t)
    expected = 0.02 * (f * probs.mean(dim=1)).sum(-1).mean()
    assert abs(moe.aux_loss.item() - expected.item()) <= 1e-7
    moe.aux_loss.backward()
    assert moe.gate.weight.grad.abs().sum() > 0  # the loss trains the router


def test_zero_alpha_gives_no_balance_loss():
    moe = _moe(aux_loss_alpha=0.0).train()
    moe(torch.randn(1, 4, 16))
    assert moe.aux_loss is None


def test_zero_alpha_model_loss_is_the_language_model_loss():
    cfg = OCR2Config.from_preset("tiny")
    cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, aux_loss_alpha=0.0))
    torch.manual_seed(0)
    model = OCR2Model(cfg).train()
    ids = torch.tensor([[0, 40, 41, 42, 43, 44]])
    out = model(ids, labels=ids)
    assert out.aux_loss is None and out.loss is out.lm_loss


def test_balance_loss_is_only_computed_in_training():
    moe = _moe(aux_loss_alpha=0.1).eval()
    moe(torch.randn(1, 4, 16))
    assert moe.aux_loss is None

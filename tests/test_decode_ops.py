"""Decoding's per-op cost: an ATen-call budget per decoded token, and the cheaper forms equal to the reference ones.

A decoded token is dispatch-bound (every ATen call a kernel launch on a GPU), so the count per step is guarded:
the tiny model's step went from 988 calls (nested, as torch.profiler counts them) to 746 with F.rms_norm, the
sign-folded RoPE over q and k at once, the fused q/k/v matmul and the leaner MoE loop. Each faster form is
checked against the form it replaced."""

from __future__ import annotations

import copy

import pytest
import torch

from eval.bench.decode_ops import count_decode_ops
from ocr2 import OCR2Config, OCR2Model
from ocr2.generation import greedy_decode
from ocr2.modeling.transformer import RMSNorm, RotaryEmbedding, SelfAttention, apply_rope, apply_rope_signed, layer_rope

# Measured 746 (tiny preset, one sequence, 16 cached positions; default path); the margin absorbs a torch
# upgrade's extra internal call here and there, not a lost optimisation (each was worth 20+ calls).
DECODE_STEP_BUDGET = 780


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return OCR2Model(OCR2Config.from_preset("tiny")).eval()


def test_a_decoding_step_stays_within_its_aten_call_budget(tiny):
    ops = count_decode_ops(tiny, cache_len=16)
    assert ops.total <= DECODE_STEP_BUDGET, ops.top(15)


def test_the_step_count_does_not_grow_with_the_cache(tiny):
    assert count_decode_ops(tiny, cache_len=8).total == count_decode_ops(tiny, cache_len=40).total


# ----------------------------------------------------------------------------------------- RMSNorm


def _reference_rms_norm(norm: RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """The 8-op form it replaced: normalise in fp32, cast back, then the gain."""
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + norm.eps)
    return norm.weight * x32.to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_equals_the_reference_form(dtype):
    g = torch.Generator().manual_seed(0)
    norm = RMSNorm(48, eps=1e-6).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.1 * torch.randn(48, generator=g))
    x = (3 * torch.randn(2, 5, 48, generator=g)).to(dtype)
    out, ref = norm(x), _reference_rms_norm(norm, x)
    assert out.dtype == ref.dtype == dtype
    # fp32: the fused kernel's reduction order differs by rounding only; bf16: both round the same fp32 values.
    torch.testing.assert_close(out, ref, rtol=1e-6 if dtype == torch.float32 else 1e-2, atol=1e-6)


# ----------------------------------------------------------------------------------------- RoPE


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sign_folded_rope_is_rotate_half_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(0)
    rotary = RotaryEmbedding(16, 1e4)
    cos, sin = rotary(torch.arange(7), dtype)  # (1, 1, L, D)
    x = torch.randn(2, 3, 7, 16, generator=g).to(dtype)  # (B, H, L, D)
    ref = apply_rope(x, cos, sin)
    cos_l, sin_l = layer_rope(cos, sin)  # (1, L, 1, D)
    out = apply_rope_signed(x.transpose(1, 2), cos_l, sin_l).transpose(1, 2)
    assert torch.equal(out, ref)


# ----------------------------------------------------------------------------------------- q/k/v


def _attention(dtype, bias: bool) -> tuple[SelfAttention, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    attn = SelfAttention(64, num_heads=4, num_kv_heads=2, qkv_bias=bias).to(dtype)
    if bias:
        with torch.no_grad():
            for m in (attn.q_proj, attn.k_proj, attn.v_proj):
                m.bias.normal_()
    cos, sin = layer_rope(*RotaryEmbedding(16, 1e6)(torch.arange(5), dtype))
    return attn, torch.randn(2, 5, 64).to(dtype), cos, sin


def _separate(attn, x, cos, sin):
    """The three projections, as training runs them (autograd on, so the fused path is skipped)."""
    with torch.enable_grad():
        return [t.detach() for t in attn.project(x, cos, sin)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_qkv_equals_three_projections(dtype, bias):
    attn, x, cos, sin = _attention(dtype, bias)
    with torch.no_grad():
        fused = attn.project(x, cos, sin)
    assert attn.qkv.weight is not None  # the fused path ran
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
    for a, b in zip(fused, _separate(attn, x, cos, sin)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, **tol)


def test_fused_qkv_follows_in_place_weight_updates():
    attn, x, cos, sin = _attention(torch.float32, bias=True)
    with torch.no_grad():
        attn.project(x, cos, sin)
        attn.k_proj.weight.mul_(2.0)  # in place: load_state_dict and optimizer steps do this
        attn.v_proj.bias.add_(1.0)
        fused = attn.project(x, cos, sin)
    for a, b in zip(fused, _separate(attn, x, cos, sin)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_qkv_follows_replaced_weights():
    attn, x, cos, sin = _attention(torch.float32, bias=False)
    with torch.no_grad():
        attn.project(x, cos, sin)
        attn.q_proj.weight = torch.nn.Parameter(torch.randn_like(attn.q_proj.weight))
        fused = attn.project(x, cos, sin)
    torch.testing.assert_close(fused[0], _separate(attn, x, cos, sin)[0], rtol=1e-5, atol=1e-6)


def test_fused_qkv_is_not_used_by_training():
    attn, x, cos, sin = _attention(torch.float32, bias=False)
    attn.project(x, cos, sin)
    assert attn.qkv.weight is None


def test_fused_weights_are_not_copied_with_the_model(tiny):
    model = copy.deepcopy(tiny)
    model.generate(torch.tensor([[0, 40, 41]]), max_new_tokens=2, eos_token_id=-1)
    clone = copy.deepcopy(model)
    assert all(layer.self_attn.qkv.weight is None for layer in clone.decoder.layers)


# ----------------------------------------------------------------------------------------- static cache path


def _padded_batch(cfg):
    ids = torch.tensor([[cfg.bos_token_id] + list(range(40, 52)), [2, 2, 2, cfg.bos_token_id] + list(range(60, 69))])
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    return ids, mask


def test_static_cache_decodes_the_same_ids(tiny):
    ids, mask = _padded_batch(tiny.config)
    ref = greedy_decode(tiny, ids, attention_mask=mask, max_new_tokens=12, eos_token_id=-1)
    out = greedy_decode(tiny, ids, attention_mask=mask, max_new_tokens=12, eos_token_id=-1, static_cache=True)
    assert torch.equal(out, ref)


@pytest.mark.slow  # Inductor's first compile of the step: ~30-45 s on 2 busy cores, seconds with a warm cache
def test_compiled_static_step_decodes_the_same_ids(tiny):
    ids, mask = _padded_batch(tiny.config)
    ref = greedy_decode(tiny, ids, attention_mask=mask, max_new_tokens=12, eos_token_id=-1)
    out = greedy_decode(tiny, ids, attention_mask=mask, max_new_tokens=12, eos_token_id=-1, compile=True)
    assert torch.equal(out, ref)


@pytest.mark.slow  # shares the compile above when run after it; compiles once itself otherwise
def test_compiled_calls_reuse_one_cache_across_prompt_lengths(tiny):
    """A CUDA graph replays over the addresses it was recorded with: a second call (a shorter prompt, the same
    capacity bucket) must decode over the same buffers, and still give the default path's ids."""
    from ocr2 import generation

    ids, mask = _padded_batch(tiny.config)
    greedy_decode(tiny, ids, attention_mask=mask, max_new_tokens=12, eos_token_id=-1, compile=True)
    first = generation._REUSED.cache.keys[0]
    shorter, short_mask = ids[:, 2:], mask[:, 2:]
    ref = greedy_decode(tiny, shorter, attention_mask=short_mask, max_new_tokens=12, eos_token_id=-1)
    out = greedy_decode(tiny, shorter, attention_mask=short_mask, max_new_tokens=12, eos_token_id=-1, compile=True)
    assert generation._REUSED.cache.keys[0] is first  # the same tensor (an address alone could be recycled)
    assert torch.equal(out, ref)


def test_static_cache_needs_a_cache(tiny):
    with pytest.raises(ValueError, match="use_cache"):
        greedy_decode(tiny, torch.tensor([[0, 40]]), max_new_tokens=2, use_cache=False, static_cache=True)


# ----------------------------------------------------------------------------------------- MoE forms


def _moe():
    from ocr2.modeling.moe import MoE

    torch.manual_seed(0)
    moe = MoE(OCR2Config.from_preset("tiny").decoder).eval()
    with torch.no_grad():
        for p in moe.parameters():
            p.normal_(std=0.1)
    moe.experts.grouped = False
    x = torch.randn(5, moe.cfg.hidden_size)
    weights, idx = torch.topk(moe.gate(x), moe.cfg.num_experts_per_tok, dim=-1)
    return moe.experts, x, idx, weights


def test_gathered_experts_equal_the_loop():
    """The compiled step's fallback (no grouped GEMM for the device) against the per-expert loop."""
    experts, x, idx, weights = _moe()
    with torch.no_grad():
        torch.testing.assert_close(experts._gathered(x, idx, weights), experts(x, idx, weights), rtol=1e-5,
                                   atol=1e-6)


def test_the_loops_expert_views_follow_replaced_weights():
    experts, x, idx, weights = _moe()
    with torch.no_grad():
        experts(x, idx, weights)  # views taken
        experts.down_proj = torch.nn.Parameter(2 * experts.down_proj.detach())
        out = experts(x, idx, weights)
    with torch.enable_grad():  # views taken afresh
        ref = experts(x, idx, weights).detach()
    torch.testing.assert_close(out, ref)


def test_a_static_step_does_not_sync(tiny):
    """What CUDA graphs need: no value read back inside the step (MoE on the grouped GEMM, CUDA's default)."""
    from ocr2.generation import static_step
    from ocr2.modeling.moe import MoE, grouped_mm_supported
    from ocr2.modeling.static_cache import StaticKVCache

    from tests.sync_ops import SyncCounter

    model = copy.deepcopy(tiny)
    moes = [m for m in model.modules() if isinstance(m, MoE)]
    e = moes[0].experts
    if not grouped_mm_supported(torch.zeros(4, e.gate_proj.shape[-1]), e.gate_proj, e.up_proj, e.down_proj):
        pytest.skip(f"torch {torch.__version__} has no CPU grouped GEMM")
    for m in moes:
        m.experts.grouped = True
    ids, mask = _padded_batch(model.config)
    cache = StaticKVCache(len(model.decoder.layers), capacity=ids.shape[1] + 4)
    with torch.inference_mode():
        model(ids, attention_mask=mask, cache=cache, logits_to_keep=1)
        cache.start_steps()
        embeds = model.decoder.embed_tokens(ids[:, -1:])
        positions = mask.sum(-1, keepdim=True)
        with SyncCounter() as syncs:
            static_step(model, cache, embeds, positions, torch.tensor([ids.shape[1]]))
    assert syncs.total == 0, dict(syncs.counts)


def test_moving_the_model_drops_its_derived_weights(tiny):
    model = copy.deepcopy(tiny)
    model.generate(torch.tensor([[0, 40, 41]]), max_new_tokens=2, eos_token_id=-1)
    assert model.decoder.layers[0].self_attn.qkv.weight is not None
    assert model.decoder.layers[1].mlp.experts._views.value is not None
    model.to(torch.float64)
    assert all(layer.self_attn.qkv.weight is None for layer in model.decoder.layers)
    assert all(layer.mlp.experts._views.value is None for layer in model.decoder.layers[1:])

"""The decoder's mask rule (`DecoderMask`): its dense form against hand-written masks, the other backends' forms
against the dense one, and one build per decoder forward however many layers attend."""

from __future__ import annotations

import types

import pytest
import torch

from ocr2.config import DecoderConfig
from ocr2.modeling import attention
from ocr2.modeling.decoder import KVCache, MoEDecoder
from ocr2.modeling.decoder_mask import DecoderMask

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


def _rows(*rows: str) -> torch.Tensor:
    """A hand-written (Lq, Lk) mask, one string per query row: 1 = may attend."""
    return torch.tensor([[c == "1" for c in r] for r in rows])


# ----------------------------------------------------------------------------------------- the rule, dense


def test_plain_causal_with_a_cache_offset():
    # 2 new tokens after 3 cached: they sit at positions 3 and 4.
    rule = DecoderMask.build(2, past=3)
    assert rule.plain and rule.offset == 3
    assert torch.equal(rule.dense()[0, 0], _rows("11110", "11111"))


def test_left_padding_hides_pad_keys_but_every_token_sees_itself():
    rule = DecoderMask.build(4, attention_mask=torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]]))
    dense = rule.dense()
    assert dense.shape == (2, 1, 4, 4)
    assert torch.equal(dense[0, 0], _rows("1000", "0100", "0010", "0011"))
    assert torch.equal(dense[1, 0], _rows("1000", "1100", "1110", "1111"))


def test_padding_under_a_kv_cache():
    # One new token after 3 cached, the first of which was padding.
    rule = DecoderMask.build(1, attention_mask=torch.tensor([[0, 1, 1, 1]]), past=3)
    assert torch.equal(rule.dense()[0, 0], _rows("0111"))


def test_packed_samples_see_only_their_own_sample():
    rule = DecoderMask.build(5, sequence_ids=torch.tensor([[0, 0, 1, 1, 1]]))
    assert torch.equal(rule.dense()[0, 0], _rows("10000", "11000", "00100", "00110", "00111"))


def test_packed_row_with_trailing_padding():
    # The collator's form: padding at the end of a packed row has sample id -1 and attention mask 0.
    rule = DecoderMask.build(4, attention_mask=torch.tensor([[1, 1, 1, 0]]),
                             sequence_ids=torch.tensor([[0, 0, 1, -1]]))
    assert torch.equal(rule.dense()[0, 0], _rows("1000", "1100", "0010", "0001"))


def test_an_all_real_attention_mask_is_the_plain_rule():
    assert DecoderMask.build(3, attention_mask=torch.ones(2, 3, dtype=torch.long)).plain


def test_packing_with_a_cache_and_mis_shaped_masks_are_errors():
    with pytest.raises(ValueError, match="KV cache"):
        DecoderMask.build(1, past=2, sequence_ids=torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="key_mask"):
        DecoderMask(2, 4, key_mask=torch.ones(1, 2, dtype=torch.bool))


# ----------------------------------------------------------------------------------------- other forms

RULES = {
    "plain_cached": lambda: DecoderMask.build(2, past=3),
    "padding": lambda: DecoderMask.build(4, attention_mask=torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])),
    "packed": lambda: DecoderMask.build(5, sequence_ids=torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 2, 2]])),
    "packed_padded": lambda: DecoderMask.build(4, attention_mask=torch.tensor([[1, 1, 1, 0]]),
                                               sequence_ids=torch.tensor([[0, 0, 1, -1]])),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_flex_block_mask_is_the_dense_rule(name):
    from torch.nn.attention.flex_attention import create_mask

    rule = RULES[name]()
    batch = rule.batch or 1
    got = create_mask(rule.block_mask("cpu").mask_mod, batch, 1, rule.q_len, rule.kv_len, device="cpu")
    assert torch.equal(got, rule.dense().expand(batch, 1, -1, -1))


def test_flash_varlen_plan_for_padding_and_packing():
    plan = RULES["padding"]().varlen()
    assert plan.cu_q.tolist() == [0, 2, 6] and plan.cu_k.tolist() == [0, 2, 6]
    assert plan.dropped.tolist() == [0, 1] and (plan.max_q, plan.max_k) == (4, 4)
    plan = RULES["packed"]().varlen()
    assert plan.cu_q.tolist() == [0, 2, 5, 6, 8, 10] and plan.dropped.numel() == 0
    plan = RULES["packed_padded"]().varlen()  # the packing collator's right padding: -1 and mask 0 drop out
    assert plan.cu_q.tolist() == [0, 2, 3] and plan.dropped.tolist() == [3] and plan.max_q == 2


def test_flash_has_no_plan_where_its_kernel_cannot_express_the_rule():
    assert RULES["plain_cached"]().varlen() is None  # plain: flash_attn_func(causal=True) needs none
    assert DecoderMask.build(3, sequence_ids=torch.tensor([[0, 1, 0]])).varlen() is None  # not contiguous runs
    assert DecoderMask.build(1, attention_mask=torch.tensor([[1, 1, 0]]), past=2).varlen() is None


# ----------------------------------------------------------------------------------------- once per forward


def _decoder(backend: str) -> MoEDecoder:
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=64, hidden_size=32, num_layers=3, num_heads=4, num_kv_heads=4,
                        intermediate_size=64, first_k_dense=1, n_routed_experts=4, n_shared_experts=1,
                        moe_intermediate_size=16, num_experts_per_tok=2)
    decoder = MoEDecoder(cfg, backend).eval()
    with torch.no_grad():  # routed experts are allocated uninitialised (the model's reset_parameters fills them)
        for p in decoder.parameters():
            p.normal_(std=0.1) if p.dim() > 1 else p.uniform_(0.8, 1.2)
    return decoder


def _count(monkeypatch, owner, name: str) -> list:
    calls, real = [], getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *a, **kw: calls.append(1) or real(*a, **kw))
    return calls


def _forward(decoder: MoEDecoder, cache: KVCache | None = None, length: int = 6, mask=None):
    x = torch.randn(2, length, decoder.cfg.hidden_size, generator=torch.Generator().manual_seed(1))
    positions = torch.arange(length)[None].expand(2, -1)
    if mask is None:
        mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        return decoder(x, positions, attention_mask=mask, cache=cache)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_dense_mask_is_built_once_per_forward(monkeypatch, backend):
    calls = _count(monkeypatch, DecoderMask, "dense")
    _forward(_decoder(backend))
    assert len(calls) == 1  # three layers, one mask


def test_dense_mask_is_built_once_per_cached_step(monkeypatch):
    calls = _count(monkeypatch, DecoderMask, "dense")
    decoder, cache = _decoder("sdpa"), KVCache(3)
    prompt_mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    _forward(decoder, cache, mask=prompt_mask)
    _forward(decoder, cache, length=1, mask=torch.cat([prompt_mask, torch.ones(2, 1, dtype=torch.long)], 1))
    assert len(calls) == 2 and len(cache) == 7


def test_flex_block_mask_is_built_once_per_forward(monkeypatch):
    from torch.nn.attention import flex_attention as flex

    calls = _count(monkeypatch, flex, "create_block_mask")
    _forward(_decoder("flex"))
    assert len(calls) == 1


def test_flash_plan_is_built_once_per_forward(monkeypatch):
    from test_attention_backends import _reference_flash_attn_func, _reference_flash_attn_varlen_func

    fake = types.SimpleNamespace(flash_attn_func=_reference_flash_attn_func,
                                 flash_attn_varlen_func=_reference_flash_attn_varlen_func)
    monkeypatch.setattr(attention, "_flash_module", lambda: fake)
    monkeypatch.setattr(attention, "flash_available", lambda device=None, dtype=None: True)
    plans = _count(monkeypatch, DecoderMask, "varlen")
    kernels = _count(monkeypatch, fake, "flash_attn_varlen_func")
    got = _forward(_decoder("flash"))
    assert len(plans) == 1 and len(kernels) == 3
    assert torch.allclose(got[:, 2:], _forward(_decoder("eager"))[:, 2:], atol=1e-5)

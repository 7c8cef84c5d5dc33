"""The flash wrapper takes the kernel path, on CPU with stand-ins for flash-attn's functions that count calls:
packed stage-1 rows with right padding (`sequence_ids` -1 and attention_mask 0 on pads, as the collator gives)
run the varlen kernel, not dense SDPA; decoding over a left-padded KV cache runs flash_attn_with_kvcache on the
cache's own buffers, not a gathered copy of the cache in every layer for every token."""

from __future__ import annotations

import functools
import types

import pytest
import torch

from ocr2.config import DecoderConfig
from ocr2.modeling import attention
from ocr2.modeling.attention import eager_attention
from ocr2.modeling.decoder import KVCache, MoEDecoder, positions_from_mask

from tests.test_attention_backends import _reference_flash_attn_func, _reference_flash_attn_varlen_func


def _reference_flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=None, cache_leftpad=None,
                                       softmax_scale=None, causal=False):
    """flash_attn_with_kvcache semantics on (B, L, H, D): row b sees keys cache_leftpad[b]..cache_seqlens-1."""
    outs = []
    for b in range(q.shape[0]):
        k, v = (t[b:b + 1, int(cache_leftpad[b]):cache_seqlens] for t in (k_cache, v_cache))
        lq, lk = q.shape[1], k.shape[1]
        mask = torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq) if causal else None
        outs.append(eager_attention(q[b:b + 1].transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask,
                                    softmax_scale).transpose(1, 2))
    return torch.cat(outs)


@pytest.fixture
def kernels(monkeypatch):
    """The stand-in flash-attn, every call recorded by name (with the key tensor it got)."""
    calls = []

    def recorded(name, fn):
        @functools.wraps(fn)  # keeps fn's signature: the wrapper checks it for `cache_leftpad`
        def call(q, k, *args, **kwargs):
            calls.append((name, k))
            return fn(q, k, *args, **kwargs)
        return call

    fake = types.SimpleNamespace(
        flash_attn_func=recorded("func", _reference_flash_attn_func),
        flash_attn_varlen_func=recorded("varlen", _reference_flash_attn_varlen_func),
        flash_attn_with_kvcache=recorded("kvcache", _reference_flash_attn_with_kvcache))
    monkeypatch.setattr(attention, "_flash_module", lambda: fake)
    monkeypatch.setattr(attention, "flash_available", lambda device=None, dtype=None: True)
    real_sdpa = attention._sdpa
    monkeypatch.setattr(attention, "_sdpa", lambda *a, **kw: calls.append(("sdpa", None)) or real_sdpa(*a, **kw))
    return calls


LAYERS = 3


def _decoder(backend: str) -> MoEDecoder:
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=64, hidden_size=32, num_layers=LAYERS, num_heads=4, num_kv_heads=4,
                        intermediate_size=64, first_k_dense=1, n_routed_experts=4, n_shared_experts=1,
                        moe_intermediate_size=16, num_experts_per_tok=2)
    decoder = MoEDecoder(cfg, backend).eval()
    with torch.no_grad():
        for p in decoder.parameters():
            p.normal_(std=0.1) if p.dim() > 1 else p.uniform_(0.8, 1.2)
    return decoder


def _packed_batch():
    """Two packed rows, the second right-padded by 3: what collate_packed gives."""
    sequence_ids = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 1, 1, -1, -1, -1]])
    mask = sequence_ids >= 0
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2], [0, 1, 0, 1, 2, 0, 0, 0]])
    x = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(1))
    return x, positions, mask.long(), sequence_ids


def test_packed_rows_with_right_padding_take_the_varlen_kernel(kernels):
    x, positions, mask, seq = _packed_batch()
    with torch.no_grad():
        got = _decoder("flash")(x, positions, mask, sequence_ids=seq)
        assert [name for name, _ in kernels] == ["varlen"] * LAYERS
        ref = _decoder("eager")(x, positions, mask, sequence_ids=seq)
    real = mask.bool()
    assert (got - ref)[real].abs().max().item() <= 1e-5


def _prefill(decoder, length=6):
    x = torch.randn(2, length + 1, 32, generator=torch.Generator().manual_seed(2))
    mask = torch.ones(2, length, dtype=torch.bool)
    mask[0, :2] = False  # left padding
    cache = KVCache(LAYERS, capacity=length + 1)
    with torch.no_grad():
        decoder(x[:, :length], positions_from_mask(mask, length), mask, cache)
        step_mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.bool)], dim=1)
        step = lambda: decoder(x[:, length:], positions_from_mask(step_mask, 1), step_mask, cache)  # noqa: E731
    return cache, step


def test_padded_decoding_runs_the_kv_cache_kernel_on_the_cache_itself(kernels):
    cache, step = _prefill(_decoder("flash"))
    kernels.clear()
    with torch.no_grad():
        got = step()
    assert [name for name, _ in kernels] == ["kvcache"] * LAYERS
    # The kernel read the cache's buffers in place (a transposed view), not a gathered copy.
    assert [k.untyped_storage().data_ptr() for _, k in kernels] == [b.untyped_storage().data_ptr()
                                                                     for b in cache.keys]
    _, ref_step = _prefill(_decoder("eager"))
    with torch.no_grad():
        assert (got - ref_step()).abs().max().item() <= 1e-5


def test_without_the_kv_cache_kernel_padded_decoding_still_runs_varlen(kernels, monkeypatch):
    """flash-attn < 2.6 has no `cache_leftpad`: the varlen plan (a gather per layer) is the exact fallback."""
    monkeypatch.delattr(attention._flash_module(), "flash_attn_with_kvcache")
    cache, step = _prefill(_decoder("flash"))
    kernels.clear()
    with torch.no_grad():
        step()
    assert [name for name, _ in kernels] == ["varlen"] * LAYERS


@pytest.fixture
def null_kernels(monkeypatch):
    """Stand-ins that compute nothing (and so never sync themselves): what is counted is the wrapper's own work."""
    def out(q, *args, **kwargs):
        return torch.zeros_like(q)

    def with_kvcache(q, k_cache, v_cache, cache_seqlens=None, cache_leftpad=None, softmax_scale=None, causal=False):
        return torch.zeros_like(q)

    fake = types.SimpleNamespace(flash_attn_func=out, flash_attn_varlen_func=out, flash_attn_with_kvcache=with_kvcache)
    monkeypatch.setattr(attention, "_flash_module", lambda: fake)
    monkeypatch.setattr(attention, "flash_available", lambda device=None, dtype=None: True)


def _with_layers(n: int) -> MoEDecoder:
    global LAYERS
    saved, LAYERS = LAYERS, n
    try:
        return _decoder("flash")
    finally:
        LAYERS = saved


def test_padded_flash_decoding_step_syncs_once_at_any_depth(null_kernels):
    from tests.sync_ops import SyncCounter

    counts = []
    for n in (2, 5):
        decoder = _with_layers(n)
        x = torch.randn(2, 7, 32)
        mask = torch.ones(2, 6, dtype=torch.bool)
        mask[0, :2] = False
        cache = KVCache(n, capacity=7)
        with torch.no_grad():
            decoder(x[:, :6], positions_from_mask(mask, 6), mask, cache)
            mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.bool)], dim=1)
            with SyncCounter() as syncs:
                decoder(x[:, 6:], positions_from_mask(mask, 1), mask, cache)
        counts.append(syncs.total)
    assert counts == [1, 1]  # the mask's all-real check; nothing per layer


def test_packed_flash_forward_syncs_a_fixed_number_of_times_at_any_depth(null_kernels):
    """The varlen plan (gather indices, sequence lengths, their maximum) is built once per forward: 6 syncs."""
    from tests.sync_ops import SyncCounter

    x, positions, mask, seq = _packed_batch()
    counts = []
    for n in (2, 5):
        decoder = _with_layers(n)
        with torch.no_grad(), SyncCounter() as syncs:
            decoder(x, positions, mask, sequence_ids=seq)
        counts.append(dict(syncs.counts))
    assert counts[0] == counts[1] and sum(counts[0].values()) == 6, counts

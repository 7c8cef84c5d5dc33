"""Greedy decoding allocates its KV cache once, exactly (prompt + max_new_tokens - 1 positions: the last token is
never fed back), never past the decoder's positions, and decodes the same tokens as without a cache."""

from __future__ import annotations

import copy

import pytest
import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2 import generation
from ocr2.modeling.decoder import KVCache


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return OCR2Model(OCR2Config.from_preset("tiny")).eval()


class _SpyCache(KVCache):
    made: list["_SpyCache"] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.buffers_seen = [set() for _ in self.keys]
        _SpyCache.made.append(self)

    def update(self, layer, k, v):
        out = super().update(layer, k, v)
        self.buffers_seen[layer].add(self.keys[layer].data_ptr())
        return out


@pytest.fixture
def spy(monkeypatch):
    _SpyCache.made.clear()
    monkeypatch.setattr(generation, "KVCache", _SpyCache)
    return _SpyCache.made


def _prompt(cfg, length=9):
    return torch.tensor([[cfg.bos_token_id] + list(range(40, 40 + length - 1))])


def test_cache_is_allocated_once_at_exactly_prompt_plus_new_tokens(tiny, spy):
    ids = _prompt(tiny.config)
    out = tiny.generate(ids, max_new_tokens=12, eos_token_id=-1)
    (cache,) = spy
    assert out.shape[1] == 12
    assert [k.shape[2] for k in cache.keys] == [ids.shape[1] + 11] * len(cache.keys)
    assert [len(s) for s in cache.buffers_seen] == [1] * len(cache.keys)


def test_generation_stops_at_the_models_last_position(tiny, spy):
    model = copy.deepcopy(tiny)
    ids = _prompt(model.config)
    model.config.decoder.max_position_embeddings = ids.shape[1] + 5
    out = model.generate(ids, max_new_tokens=50, eos_token_id=-1)
    assert out.shape[1] == 5  # prompt + generated = the model's positions
    assert max(k.shape[2] for k in spy[0].keys) == ids.shape[1] + 4


def test_a_prompt_that_fills_the_positions_is_a_clear_error(tiny):
    model = copy.deepcopy(tiny)
    ids = _prompt(model.config)
    model.config.decoder.max_position_embeddings = ids.shape[1]
    with pytest.raises(ValueError, match="no room to generate"):
        model.generate(ids, max_new_tokens=4)


def test_preallocated_cache_decodes_like_no_cache(tiny):
    ids = _prompt(tiny.config, 15)
    mask = torch.ones_like(ids)
    mask[:, :3] = 0  # left padding: the masked path
    cached = tiny.generate(ids, attention_mask=mask, max_new_tokens=10, eos_token_id=-1, use_cache=True)
    uncached = tiny.generate(ids, attention_mask=mask, max_new_tokens=10, eos_token_id=-1, use_cache=False)
    assert cached.tolist() == uncached.tolist()

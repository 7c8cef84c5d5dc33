"""One decoding step timed directly: one new token over a KV cache holding exactly `cache_len` positions.

Each side uses its own cache and calls its model the way its own generation loop does:
  * ours: `ocr2.generation.greedy_decode`'s step — embed the token, `model(None, inputs_embeds=..., position_ids,
    cache=KVCache, logits_to_keep=1)`, argmax — under `torch.inference_mode`, with a preallocated `KVCache`;
  * the port: what `GenerationMixin.generate` feeds its forward after the prefill (seen by hooking it):
    `forward(input_ids=(B, 1), cache=DynamicCache, position_ids=(B, 1), logits_to_keep=1, use_cache=True)`,
    argmax — under `torch.no_grad`, as `generate` runs.
The caches are filled through their own `update` with random keys/values of the real shapes (the values do not
change the arithmetic, and filling 8,000 positions by a real prefill would cost more than the whole step table).
Between timed calls an untimed rewind puts each cache back to `cache_len` (ours: the filled length; the port:
`DynamicCache.crop`), so every timed step sees the same length, and the port's cache still concatenates its whole
history each step as in `generate`. The loops' own bookkeeping (logits processors, stopping criteria, EOS
tracking) is left out on both sides.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch


@dataclasses.dataclass
class StepPair:
    """(ours, port) step callables, the untimed rewinds that keep the caches at `cache_len`, and the caches
    (our `KVCache`, the port's `DynamicCache`)."""

    fns: tuple[Callable, Callable]
    setups: tuple[Callable, Callable]
    caches: tuple
    cache_len: int
    batch: int


def _random_kv(batch: int, heads: int, length: int, head_dim: int, layers: int, device, dtype, seed: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(layers):
        k = torch.randn(batch, heads, length, head_dim, generator=g)
        v = torch.randn(batch, heads, length, head_dim, generator=g)
        yield k.to(device=device, dtype=dtype), v.to(device=device, dtype=dtype)


def ours_step(model, cache_len: int, batch: int = 1, seed: int = 0):
    from ocr2.modeling.decoder import KVCache

    d = model.config.decoder
    param = next(model.parameters())
    layers = len(model.decoder.layers)
    cache = KVCache(layers, capacity=cache_len + 1)  # the step's own token fits without regrowing
    with torch.inference_mode():
        kv = _random_kv(batch, d.num_kv_heads, cache_len, d.hidden_size // d.num_heads, layers, param.device,
                        param.dtype, seed)
        for i, (k, v) in enumerate(kv):
            cache.update(i, k, v)
    token = torch.full((batch, 1), 7, dtype=torch.long, device=param.device)
    positions = torch.full((batch, 1), cache_len, dtype=torch.long, device=param.device)

    @torch.inference_mode()
    def step():
        embeds = model.decoder.embed_tokens(token).to(param.dtype)
        logits = model(None, inputs_embeds=embeds, position_ids=positions, cache=cache, logits_to_keep=1).logits
        return logits[:, -1].argmax(-1)

    def rewind():
        cache.lengths = [cache_len] * layers  # the buffers keep their capacity; only the filled length moves

    return step, rewind, cache


def port_step(model, cache_len: int, batch: int = 1, seed: int = 0):
    from transformers import DynamicCache

    t = model.config.text_config
    param = next(model.parameters())
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    cache = DynamicCache(config=model.config)
    kv = _random_kv(batch, t.num_key_value_heads, cache_len, head_dim, t.num_hidden_layers, param.device,
                    param.dtype, seed)
    for i, (k, v) in enumerate(kv):
        cache.update(k, v, i)
    token = torch.full((batch, 1), 7, dtype=torch.long, device=param.device)
    positions = torch.full((batch, 1), cache_len, dtype=torch.long, device=param.device)

    @torch.no_grad()
    def step():
        out = model(input_ids=token, cache=cache, position_ids=positions, logits_to_keep=1, use_cache=True)
        return out.logits[:, -1].argmax(-1)

    def rewind():
        extra = cache.get_seq_length() - cache_len
        if extra:
            cache.crop(-extra)

    return step, rewind, cache


def step_pair(ours, port, cache_len: int, batch: int = 1) -> StepPair:
    ours.eval()
    port.eval()
    o_step, o_rewind, o_cache = ours_step(ours, cache_len, batch)
    p_step, p_rewind, p_cache = port_step(port, cache_len, batch)
    return StepPair((o_step, p_step), (o_rewind, p_rewind), (o_cache, p_cache), cache_len, batch)

"""Greedy decoding with a KV cache, batched over left-padded prompts, stopping at EOS: the one decoding loop.

The vision path runs once: image embeddings are scattered into the prompt embeddings before the first step,
so cached and uncached decoding see exactly the same inputs (a test checks they produce the same ids). Callers
that build the decoder input themselves (the optical memory interleaves text and page images) pass
`inputs_embeds` instead of ids and views.

This module imports the decoder, not the model: `OCR2Model.generate` is a thin call into it.
"""

from __future__ import annotations

import functools
import threading
from typing import Callable

import torch

from ocr2.modeling.decoder import KVCache, positions_from_mask
from ocr2.modeling.static_cache import StaticKVCache

# (generated ids so far (B, t), next-token logits (B, V)) -> logits
LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.inference_mode()  # like no_grad, minus autograd's per-op bookkeeping (a few % per decoding step)
def greedy_decode(model, input_ids: torch.Tensor | None = None, global_views=None, crops=None, num_crops=None,
                  attention_mask: torch.Tensor | None = None, max_new_tokens: int = 8192, eos_token_id: int = 1,
                  use_cache: bool = True, logits_processor: LogitsProcessor | None = None,
                  inputs_embeds: torch.Tensor | None = None, static_cache: bool = False,
                  compile: bool | str = False) -> torch.Tensor:
    """New token ids (B, T), EOS included; rows that stopped early are padded. Give `input_ids` (+ views) or
    ready `inputs_embeds` (B, L, hidden). T <= max_new_tokens, and prompt + T <= the decoder's
    `max_position_embeddings` (generation stops at the model's last position).

    `static_cache`: decoding steps over a fixed-shape cache (ocr2/modeling/static_cache.py: the whole
    prompt + max_new_tokens buffer, rounded up to a multiple of 256, under a mask; keep max_new_tokens near what is
    needed). `compile`: the
    same steps through `torch.compile` (implies `static_cache`); True is mode "reduce-overhead" (CUDA graphs)
    on CUDA and the default mode elsewhere, or give a mode name. Same ids as the default path (tested on CPU)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of input_ids and inputs_embeds")
    static_cache = static_cache or bool(compile)
    if static_cache and not use_cache:
        raise ValueError("static_cache / compile decode over a KV cache: they need use_cache=True")
    b, length = (input_ids.shape if inputs_embeds is None else inputs_embeds.shape[:2])
    device = (input_ids if inputs_embeds is None else inputs_embeds).device
    mask = (torch.ones(b, length, dtype=torch.bool, device=device) if attention_mask is None
            else attention_mask.to(device=device, dtype=torch.bool))
    # Without padding the decoder needs no mask at all (and positions are plain 0..L-1).
    padded = not bool(mask.all())
    prompt = inputs_embeds if inputs_embeds is not None else model.embed_inputs(input_ids, global_views, crops,
                                                                               num_crops)
    # Prompt and generated tokens together never exceed the model's positions.
    positions_left = model.config.decoder.max_position_embeddings - length
    if positions_left < 1:
        raise ValueError(f"the prompt holds {length} positions, the decoder has "
                         f"{model.config.decoder.max_position_embeddings}: no room to generate")
    max_new_tokens = min(max_new_tokens, positions_left)
    # The cache holds what is fed: the prompt, then every new token but the last, allocated once.
    capacity = length + max_new_tokens - 1
    step = None  # the static path's one-token step; None: every step is a model forward
    if static_cache:
        cache = _static_cache(len(model.decoder.layers), capacity, model.config.decoder.max_position_embeddings,
                              bool(compile))
        step = _compiled_step(_compile_mode(compile, device)) if compile else static_step
        index = torch.full((1,), length, dtype=torch.long, device=device)  # the cache slot of the next input
    else:
        cache = KVCache(len(model.decoder.layers), capacity=capacity) if use_cache else None
    pad = model.config.pad_token_id
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    generated = torch.full((b, max_new_tokens), pad, dtype=torch.long, device=device)
    step_inputs = prompt
    positions = positions_from_mask(mask, prompt.shape[1])
    steps = 0
    for t in range(max_new_tokens):
        if step is not None and t:
            logits = step(model, cache, step_inputs, positions, index)
            index += 1
        else:
            logits = model(None, inputs_embeds=step_inputs, attention_mask=mask if padded else None,
                           position_ids=positions, cache=cache, logits_to_keep=1).logits[:, -1]
            if step is not None:
                cache.start_steps()
        if logits_processor is not None:
            logits = logits_processor(generated[:, :t], logits)
        token = torch.where(finished, torch.full_like(finished, pad, dtype=torch.long), logits.argmax(-1))
        generated[:, t] = token
        steps = t + 1
        finished |= token == eos_token_id
        if bool(finished.all()):
            break
        new = model.decoder.embed_tokens(token[:, None])
        if new.dtype != prompt.dtype:
            new = new.to(prompt.dtype)
        if use_cache:
            step_inputs, positions = new, positions[:, -1:] + 1
        else:
            step_inputs = torch.cat([step_inputs, new], dim=1)
            positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
        if padded and step is None:  # the static cache keeps its own padding mask
            mask = torch.cat([mask, torch.ones(b, 1, dtype=torch.bool, device=device)], dim=1)
    return generated[:, :steps]


def static_step(model, cache: StaticKVCache, embeds: torch.Tensor, positions: torch.Tensor,
                index: torch.Tensor) -> torch.Tensor:
    """One decoding step over a static cache: next-token logits (B, V) in fp32. Fixed shapes and no host sync
    of its own (the MoE's is its dispatch form's: none for the grouped GEMM, CUDA's default, or when compiled):
    what `torch.compile` captures."""
    hidden = model.decoder.forward_static(embeds, positions, cache, index)
    return model.lm_head(hidden[:, -1]).float()


_REUSED = threading.local()  # per thread: the compiled path's one StaticKVCache (see `_static_cache`)
STATIC_CAPACITY_STEP = 256


def _static_cache(num_layers: int, needed: int, max_positions: int, for_compile: bool) -> StaticKVCache:
    """A static cache of at least `needed` positions, rounded up to a multiple of STATIC_CAPACITY_STEP (at most
    the model's positions) so prompts of nearby lengths share one compiled step instead of one each. When
    compiling, the thread's previous cache is reused if it has that capacity: a CUDA graph is recorded for the
    cache's addresses, and a fresh cache per call would re-record it every call."""
    capacity = min(-(-needed // STATIC_CAPACITY_STEP) * STATIC_CAPACITY_STEP, max(max_positions, needed))
    if not for_compile:
        return StaticKVCache(num_layers, capacity)
    cache = getattr(_REUSED, "cache", None)
    if cache is not None and cache.capacity == capacity and len(cache.keys) == num_layers:
        cache.reset()
        return cache
    _REUSED.cache = None  # let the previous buffers go before the new ones are allocated
    _REUSED.cache = StaticKVCache(num_layers, capacity, for_compile=True)
    return _REUSED.cache


def _compile_mode(compile: bool | str, device: torch.device) -> str:
    if isinstance(compile, str):
        return compile
    # CUDA graphs replay a step's kernels in one launch: the point of a fixed-shape step. On CPU there is no
    # such thing; the default mode fuses the elementwise ops.
    return "reduce-overhead" if device.type == "cuda" else "default"


@functools.lru_cache(maxsize=None)
def _compiled_step(mode: str):
    # dynamic=False: the shapes are the point (one graph per batch size and capacity).
    return torch.compile(static_step, mode=mode, dynamic=False)


class NoRepeatNGram:
    """The release's sliding-window no-repeat n-gram rule (its `process/ngram_norepeat.py`, a vLLM logits processor).

    Looking only at the generated tokens: any token that would complete an n-gram whose first n-1 tokens equal
    the current last n-1 tokens, and which already occurred within the last `window` generated tokens, is banned.
    Tokens in `whitelist` (officially `<td>`, `</td>`: tables legitimately repeat them) are never banned.
    Release settings: n=20, window=90 (image script); n=40, window=90 (OmniDocBench eval).
    """

    def __init__(self, ngram_size: int = 20, window: int = 90, whitelist: tuple[int, ...] = (128821, 128822)):
        if ngram_size < 2:
            raise ValueError("ngram_size must be at least 2")
        self.n, self.window, self.whitelist = ngram_size, window, frozenset(whitelist)

    def banned(self, tokens: list[int]) -> set[int]:
        n = self.n
        if len(tokens) < n:
            return set()
        prefix = tokens[len(tokens) - (n - 1):]
        start = max(0, len(tokens) - self.window)
        out = {tokens[i + n - 1] for i in range(start, len(tokens) - n + 1) if tokens[i:i + n - 1] == prefix}
        return out - self.whitelist

    def __call__(self, generated: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        # Only the last max(window, n-1) tokens can matter (`banned` never looks further back): converting the
        # whole history to Python lists every token cost ~5.5 ms/token at batch 16 x 8,192.
        tail = generated[:, -max(self.window, self.n - 1):] if generated.shape[1] else generated
        for row, tokens in enumerate(tail.tolist()):
            ban = self.banned(tokens)
            if ban:
                logits[row, list(ban)] = float("-inf")
        return logits

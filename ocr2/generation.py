"""Greedy decoding with a KV cache, batched over left-padded prompts, stopping at EOS.

The vision path runs once: image embeddings are scattered into the prompt embeddings before the first step,
so cached and uncached decoding see exactly the same inputs (a test checks they produce the same ids).
"""

from __future__ import annotations

from typing import Callable

import torch

from ocr2.modeling.decoder import KVCache
from ocr2.modeling.model import positions_from_mask

# (generated ids so far (B, t), next-token logits (B, V)) -> logits
LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def greedy_decode(model, input_ids: torch.Tensor, global_views=None, crops=None, num_crops=None,
                  attention_mask: torch.Tensor | None = None, max_new_tokens: int = 8192, eos_token_id: int = 1,
                  use_cache: bool = True, logits_processor: LogitsProcessor | None = None) -> torch.Tensor:
    b = input_ids.shape[0]
    device = input_ids.device
    mask = (torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None
            else attention_mask.to(device=device, dtype=torch.bool))
    prompt = model.embed_inputs(input_ids, global_views, crops, num_crops)
    cache = KVCache(len(model.decoder.layers)) if use_cache else None
    pad = model.config.pad_token_id
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    generated = torch.empty(b, 0, dtype=torch.long, device=device)
    step_inputs = prompt
    for _ in range(max_new_tokens):
        positions = positions_from_mask(mask, step_inputs.shape[1])
        logits = model(None, inputs_embeds=step_inputs, attention_mask=mask, position_ids=positions, cache=cache,
                       logits_to_keep=1).logits[:, -1]
        if logits_processor is not None:
            logits = logits_processor(generated, logits)
        token = torch.where(finished, torch.full_like(finished, pad, dtype=torch.long), logits.argmax(-1))
        generated = torch.cat([generated, token[:, None]], dim=1)
        finished |= token == eos_token_id
        if bool(finished.all()):
            break
        new = model.decoder.embed_tokens(token[:, None]).to(prompt.dtype)
        step_inputs = new if use_cache else torch.cat([step_inputs, new], dim=1)
        mask = torch.cat([mask, torch.ones(b, 1, dtype=torch.bool, device=device)], dim=1)
    return generated

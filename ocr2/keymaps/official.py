"""Key map: the official hub checkpoint (`deepseek-ai/DeepSeek-OCR-2`, one safetensors shard) -> ocr2 `OCR2Model`.

Official names nest the vision stack under `model.` (`model.sam_model.*`, `model.qwen2_model.model.model.layers.*`
— the double `.model.model` is Qwen2Decoder2Encoder -> CustomQwen2Decoder -> Qwen2Model), keep one module per
routed expert (`model.layers.{l}.mlp.experts.{e}.{gate,up,down}_proj.weight`), and spell the separator
`view_seperator`. We stack each layer's experts into (E, out, in) tensors, so 3 x E official tensors become 3.
`to_official` is the inverse (export): each stacked tensor is written back as E per-expert tensors.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Callable, Iterator

import torch

from ocr2.keymaps.rules import Rules, apply_rules, compile_rules
from ocr2.safetensors_stream import Entry, target_dtype

_RULES: Rules = compile_rules((
    (r"^model\.sam_model\.(.+)$", r"vision_tokenizer.\1"),
    (r"^model\.qwen2_model\.model\.model\.layers\.(.+)$", r"encoder.layers.\1"),
    (r"^model\.qwen2_model\.model\.model\.norm\.weight$", "encoder.norm.weight"),
    (r"^model\.qwen2_model\.query_(\d+)\.weight$", r"encoder.flow_queries.\1"),
    (r"^model\.projector\.layers\.(weight|bias)$", r"projector.\1"),
    (r"^model\.view_seperator$", "view_separator"),
    (r"^model\.embed_tokens\.weight$", "decoder.embed_tokens.weight"),
    (r"^model\.norm\.weight$", "decoder.norm.weight"),
    (r"^model\.layers\.(.+)$", r"decoder.layers.\1"),
    (r"^lm_head\.weight$", "lm_head.weight"),
))
_EXPERT = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


def is_official_layout(keys) -> bool:
    return any(k.startswith("model.sam_model.") or k.startswith("model.qwen2_model.") for k in keys)


def rename(key: str) -> str:
    return apply_rules(_RULES, key)


def convert(keys, get: Callable[[str], torch.Tensor], unexpected: list[str]) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (our key, tensor); per-expert tensors are stacked layer by layer (one layer's experts in memory at
    a time, already in the target dtype)."""
    experts: dict[tuple[int, str], dict[int, str]] = defaultdict(dict)
    for key in keys:
        m = _EXPERT.match(key)
        if m:
            experts[(int(m.group(1)), m.group(3))][int(m.group(2))] = key
            continue
        try:
            ours = rename(key)
        except KeyError:
            unexpected.append(key)
            continue
        yield ours, get(key)
    for (layer, proj), by_index in sorted(experts.items()):
        n = max(by_index) + 1
        if sorted(by_index) != list(range(n)):
            missing = sorted(set(range(n)) - set(by_index))
            raise KeyError(f"layer {layer} {proj}: experts {missing} are missing from the checkpoint")
        yield (f"decoder.layers.{layer}.mlp.experts.{proj}",
               torch.stack([get(by_index[e]) for e in range(n)]))


_INVERSE: Rules = compile_rules((
    (r"^vision_tokenizer\.(.+)$", r"model.sam_model.\1"),
    (r"^encoder\.layers\.(.+)$", r"model.qwen2_model.model.model.layers.\1"),
    (r"^encoder\.norm\.weight$", "model.qwen2_model.model.model.norm.weight"),
    (r"^encoder\.flow_queries\.(\d+)$", r"model.qwen2_model.query_\1.weight"),
    (r"^projector\.(weight|bias)$", r"model.projector.layers.\1"),
    (r"^view_separator$", "model.view_seperator"),
    (r"^decoder\.embed_tokens\.weight$", "model.embed_tokens.weight"),
    (r"^decoder\.norm\.weight$", "model.norm.weight"),
    (r"^decoder\.layers\.(.+)$", r"model.layers.\1"),
    (r"^lm_head\.weight$", "lm_head.weight"),
))
_STACKED = re.compile(r"^decoder\.layers\.(\d+)\.mlp\.experts\.(gate_proj|up_proj|down_proj)$")


def to_official_name(key: str) -> str:
    return apply_rules(_INVERSE, key)


def to_official(state: dict[str, torch.Tensor], dtype: torch.dtype | None, unexpected: list[str]) -> list[Entry]:
    """Export entries in the release's names, floating tensors cast to `dtype` (None: kept) when written. Stacked
    experts become one entry per expert (a view of the stacked tensor: nothing is copied until its bytes are
    written). Keys the release has no name for are appended to `unexpected`."""
    entries: list[Entry] = []
    for key, t in state.items():
        dt = target_dtype(t, dtype)
        m = _STACKED.match(key)
        if m:
            for e in range(t.shape[0]):
                name = f"model.layers.{m.group(1)}.mlp.experts.{e}.{m.group(2)}.weight"
                entries.append(Entry(name, tuple(t.shape[1:]), dt, lambda t=t, e=e, dt=dt: t[e].to(dt)))
            continue
        try:
            name = to_official_name(key)
        except KeyError:
            unexpected.append(key)
            continue
        entries.append(Entry(name, tuple(t.shape), dt, lambda t=t, dt=dt: t.to(dt)))
    return entries

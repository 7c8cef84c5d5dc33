"""Key map: the official hub checkpoint (`deepseek-ai/DeepSeek-OCR-2`, one safetensors shard) -> ocr2 `OCR2Model`.

Official names nest the vision stack under `model.` (`model.sam_model.*`, `model.qwen2_model.model.model.layers.*`
— the double `.model.model` is Qwen2Decoder2Encoder -> CustomQwen2Decoder -> Qwen2Model), keep one module per
routed expert (`model.layers.{l}.mlp.experts.{e}.{gate,up,down}_proj.weight`), and spell the separator
`view_seperator`. We stack each layer's experts into (E, out, in) tensors, so 3 x E official tensors become 3.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Callable, Iterator

import torch

_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
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
    )
)
_EXPERT = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


def is_official_layout(keys) -> bool:
    return any(k.startswith("model.sam_model.") or k.startswith("model.qwen2_model.") for k in keys)


def rename(key: str) -> str:
    for pattern, repl in _RULES:
        if pattern.match(key):
            return pattern.sub(repl, key)
    raise KeyError(key)


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

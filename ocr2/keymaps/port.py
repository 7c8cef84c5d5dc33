"""Key map: transformers port (`DeepseekOcr2ForConditionalGeneration`) -> ocr2 `OCR2Model`.

The port fuses each MoE layer's experts into `experts.gate_up_proj` (E, 2I, H: gate rows first, then up rows)
and `experts.down_proj` (E, H, I); we keep `gate_proj` and `up_proj` apart, so that one port tensor becomes two.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

import torch

from ocr2.keymaps import sam

_SAM = "model.vision_tower.sam_encoder."
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"^model\.vision_tower\.vision_encoder\.layers\.(.+)$", r"encoder.layers.\1"),
        (r"^model\.vision_tower\.vision_encoder\.norm\.weight$", "encoder.norm.weight"),
        (r"^model\.vision_tower\.query_768_resolution\.weight$", "encoder.flow_queries.768"),
        (r"^model\.vision_tower\.query_1024_resolution\.weight$", "encoder.flow_queries.1024"),
        (r"^model\.multi_modal_projector\.(weight|bias)$", r"projector.\1"),
        (r"^model\.view_separator$", "view_separator"),
        (r"^model\.language_model\.embed_tokens\.weight$", "decoder.embed_tokens.weight"),
        (r"^model\.language_model\.norm\.weight$", "decoder.norm.weight"),
        (r"^model\.language_model\.layers\.(\d+)\.mlp\.experts\.down_proj$", r"decoder.layers.\1.mlp.experts.down_proj"),
        (r"^model\.language_model\.layers\.(.+)$", r"decoder.layers.\1"),
        (r"^lm_head\.weight$", "lm_head.weight"),
    )
)
_GATE_UP = re.compile(r"^model\.language_model\.layers\.(\d+)\.mlp\.experts\.gate_up_proj$")


def is_port_layout(keys) -> bool:
    return any(k.startswith("model.vision_tower.") for k in keys)


def rename(key: str) -> str:
    if key.startswith(_SAM):
        return "vision_tokenizer." + sam.port_to_ours(key[len(_SAM):])
    for pattern, repl in _RULES:
        if pattern.match(key):
            return pattern.sub(repl, key)
    raise KeyError(key)


def convert(keys, get: Callable[[str], torch.Tensor], unexpected: list[str]) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (our key, tensor) for every port key; `get` reads one tensor (already in the target dtype).
    Keys with no counterpart are appended to `unexpected` (the loader reports them all at once)."""
    for key in keys:
        m = _GATE_UP.match(key)
        if m:
            gate, up = get(key).chunk(2, dim=1)
            prefix = f"decoder.layers.{m.group(1)}.mlp.experts."
            yield prefix + "gate_proj", gate.contiguous()
            yield prefix + "up_proj", up.contiguous()
        else:
            try:
                ours = rename(key)
            except KeyError:
                unexpected.append(key)
                continue
            yield ours, get(key)


def config_from_port(d: dict):
    """OCR2Config from a transformers-port `config.json` (DeepseekOcr2Config.to_dict())."""
    from ocr2.config import DecoderConfig, EncoderConfig, OCR2Config, VisionTokenizerConfig

    sam_c, enc_c, txt = d["vision_config"]["sam_config"], d["vision_config"]["encoder_config"], d["text_config"]
    layer_types = txt.get("mlp_layer_types") or []
    first_dense = next((i for i, t in enumerate(layer_types) if t == "sparse"), len(layer_types))
    return OCR2Config(
        vision=VisionTokenizerConfig(
            image_size=sam_c["image_size"], patch_size=sam_c["patch_size"], width=sam_c["hidden_size"],
            depth=sam_c["num_hidden_layers"], num_heads=sam_c["num_attention_heads"], mlp_ratio=sam_c["mlp_ratio"],
            window_size=sam_c["window_size"], global_attn_indexes=tuple(sam_c["global_attn_indexes"]),
            neck_channels=sam_c["output_channels"], compressor_channels=tuple(sam_c["downsample_channels"]),
            layer_norm_eps=sam_c["layer_norm_eps"]),
        encoder=EncoderConfig(
            hidden_size=enc_c["hidden_size"], num_layers=enc_c["num_hidden_layers"],
            num_heads=enc_c["num_attention_heads"], num_kv_heads=enc_c["num_key_value_heads"],
            intermediate_size=enc_c["intermediate_size"], rms_norm_eps=enc_c["rms_norm_eps"],
            rope_theta=enc_c["rope_parameters"]["rope_theta"]),
        decoder=DecoderConfig(
            vocab_size=txt["vocab_size"], hidden_size=txt["hidden_size"], num_layers=txt["num_hidden_layers"],
            num_heads=txt["num_attention_heads"], num_kv_heads=txt["num_key_value_heads"],
            intermediate_size=txt["intermediate_size"], first_k_dense=first_dense,
            n_routed_experts=txt["n_routed_experts"], n_shared_experts=txt["n_shared_experts"],
            moe_intermediate_size=txt["moe_intermediate_size"], num_experts_per_tok=txt["num_experts_per_tok"],
            routed_scaling_factor=txt["routed_scaling_factor"], rms_norm_eps=txt["rms_norm_eps"],
            rope_theta=txt["rope_parameters"]["rope_theta"],
            max_position_embeddings=txt["max_position_embeddings"]),
        image_token_id=d.get("image_token_id", 128815),
    )

"""Key map: transformers port (`DeepseekOcr2ForConditionalGeneration`) -> ocr2 `OCR2Model`.

The port fuses each MoE layer's experts into `experts.gate_up_proj` (E, 2I, H: gate rows first, then up rows)
and `experts.down_proj` (E, H, I); we keep `gate_proj` and `up_proj` apart, so that one port tensor becomes two.
`to_port` and `config_to_port` are the inverses (export to the port's layout): gate and up are fused again.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

import torch

from ocr2.keymaps import sam
from ocr2.keymaps.rules import Rules, apply_rules, compile_rules
from ocr2.safetensors_stream import Entry, target_dtype

_SAM = "model.vision_tower.sam_encoder."
_RULES: Rules = compile_rules((
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
))
_GATE_UP = re.compile(r"^model\.language_model\.layers\.(\d+)\.mlp\.experts\.gate_up_proj$")


def is_port_layout(keys) -> bool:
    return any(k.startswith("model.vision_tower.") for k in keys)


def rename(key: str) -> str:
    if key.startswith(_SAM):
        return "vision_tokenizer." + sam.port_to_ours(key[len(_SAM):])
    return apply_rules(_RULES, key)


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
        # The port keeps the special ids in its text config; absent (None) there, the release's ids stand.
        **{f"{k}_token_id": txt[f"{k}_token_id"] for k in ("bos", "eos", "pad")
           if isinstance(txt.get(f"{k}_token_id"), int)},
    )


# ---------------------------------------------------------------------------------------------------- export
_INVERSE: Rules = compile_rules((
    (r"^encoder\.layers\.(.+)$", r"model.vision_tower.vision_encoder.layers.\1"),
    (r"^encoder\.norm\.weight$", "model.vision_tower.vision_encoder.norm.weight"),
    (r"^encoder\.flow_queries\.(768|1024)$", r"model.vision_tower.query_\1_resolution.weight"),
    (r"^projector\.(weight|bias)$", r"model.multi_modal_projector.\1"),
    (r"^view_separator$", "model.view_separator"),
    (r"^decoder\.embed_tokens\.weight$", "model.language_model.embed_tokens.weight"),
    (r"^decoder\.norm\.weight$", "model.language_model.norm.weight"),
    (r"^decoder\.layers\.(.+)$", r"model.language_model.layers.\1"),
    (r"^lm_head\.weight$", "lm_head.weight"),
))
_OUR_EXPERTS = re.compile(r"^decoder\.layers\.(\d+)\.mlp\.experts\.(gate_proj|up_proj)$")


def to_port_name(key: str) -> str:
    if key.startswith("vision_tokenizer."):
        return _SAM + sam.ours_to_port(key[len("vision_tokenizer."):])
    return apply_rules(_INVERSE, key)


def to_port(state: dict[str, torch.Tensor], dtype: torch.dtype | None, unexpected: list[str]) -> list[Entry]:
    """Export entries in the port's names, floating tensors cast to `dtype` (None: kept) when written. Each MoE
    layer's gate and up stacks are fused into `gate_up_proj` (E, 2I, H), gate rows first; the fused tensor is made
    when written, so one layer's copy exists at a time. Keys the port has no name for go to `unexpected`."""
    entries: list[Entry] = []
    for key, t in state.items():
        dt = target_dtype(t, dtype)
        m = _OUR_EXPERTS.match(key)
        if m:
            if m.group(2) == "up_proj":
                continue  # written with its gate_proj
            up_key = key[: -len("gate_proj")] + "up_proj"
            if up_key not in state:
                raise KeyError(f"{key} has no {up_key} to fuse with into the port's gate_up_proj")
            up = state[up_key]
            name = f"model.language_model.layers.{m.group(1)}.mlp.experts.gate_up_proj"
            shape = (t.shape[0], t.shape[1] + up.shape[1], t.shape[2])
            entries.append(Entry(name, shape, dt, lambda g=t, u=up, dt=dt: torch.cat([g, u], dim=1).to(dt)))
            continue
        try:
            name = to_port_name(key)
        except KeyError:
            unexpected.append(key)
            continue
        entries.append(Entry(name, tuple(t.shape), dt, lambda t=t, dt=dt: t.to(dt)))
    return entries


def port_config_kwargs(cfg) -> dict:
    """`DeepseekOcr2Config(**port_config_kwargs(cfg))` describes an OCR2Config's modules (the inverse of
    `config_from_port`). Plain data: no transformers import. What the port cannot express (another encoder mask,
    hyper-connections, renormalised top-k, other view sizes) is ocr2/layout_checks.py's to refuse first."""
    v, e, d = cfg.vision, cfg.encoder, cfg.decoder
    return {
        "vision_config": {
            "sam_config": dict(
                hidden_size=v.width, num_hidden_layers=v.depth, num_attention_heads=v.num_heads,
                output_channels=v.neck_channels, downsample_channels=list(v.compressor_channels),
                global_attn_indexes=list(v.global_attn_indexes), image_size=v.image_size, patch_size=v.patch_size,
                window_size=v.window_size, mlp_ratio=v.mlp_ratio, layer_norm_eps=v.layer_norm_eps),
            "encoder_config": dict(
                hidden_size=e.hidden_size, num_hidden_layers=e.num_layers, num_attention_heads=e.num_heads,
                num_key_value_heads=e.num_kv_heads, intermediate_size=e.intermediate_size,
                rms_norm_eps=e.rms_norm_eps, rope_parameters={"rope_type": "default", "rope_theta": e.rope_theta}),
        },
        "text_config": dict(
            vocab_size=d.vocab_size, hidden_size=d.hidden_size, num_hidden_layers=d.num_layers,
            num_attention_heads=d.num_heads, num_key_value_heads=d.num_kv_heads, intermediate_size=d.intermediate_size,
            moe_intermediate_size=d.moe_intermediate_size, n_routed_experts=d.n_routed_experts,
            n_shared_experts=d.n_shared_experts, num_experts_per_tok=d.num_experts_per_tok,
            mlp_layer_types=["dense" if i < d.first_k_dense else "sparse" for i in range(d.num_layers)],
            routed_scaling_factor=d.routed_scaling_factor, topk_method="greedy", n_group=1, topk_group=1,
            rms_norm_eps=d.rms_norm_eps, max_position_embeddings=d.max_position_embeddings,
            rope_parameters={"rope_type": "default", "rope_theta": d.rope_theta},
            bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id),
        "image_token_id": cfg.image_token_id,
    }


def config_to_port(cfg) -> dict:
    """The port's `config.json` content (`DeepseekOcr2Config(...).to_dict()`, `model_type` deepseek_ocr2) for an
    OCR2Config; needs transformers with `transformers.models.deepseek_ocr2`."""
    return port_config_class()(**port_config_kwargs(cfg)).to_dict()


def port_config_class():
    try:
        from transformers.models.deepseek_ocr2 import DeepseekOcr2Config
    except ImportError as e:
        raise ImportError(f"the transformers port's layout needs transformers with transformers.models.deepseek_ocr2 "
                          f"(transformers 5.x) ({e})") from e
    return DeepseekOcr2Config

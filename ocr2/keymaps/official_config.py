"""The release's `config.json` (`model_type: deepseek_vl_v2`) <-> OCR2Config.

The release's file describes only the decoder, in DeepseekV2Config names (`language_config`, and the same keys
again at the top level); keys it leaves out take DeepseekV2Config's defaults in the release's loader and in vLLM
(`rope_theta` 10000, `norm_topk_prob` False, ...), so they do here. The vision stack (SAM, DeepEncoder V2, the
projector's input) is hard-coded in the release's `deepencoderv2/` code; its `vision_config` block is ignored by
that code and partly stale. So ocr2 writes its whole OCR2Config under an extra key, `ocr2_config`, which the
release's loader ignores: ocr2 reads non-official vision sizes back exactly, and a file without the block gets the
official preset's vision stack.
"""

from __future__ import annotations

import dataclasses

from ocr2.config import DecoderConfig, OCR2Config

MODEL_TYPE = "deepseek_vl_v2"
ARCHITECTURE = "DeepseekOCR2ForCausalLM"
OCR2_KEY = "ocr2_config"

# The release's auto_map: its loader is remote code (modeling_deepseekocr2.py and friends) that lives beside the
# weights on the Hub. ocr2 ships no such code; docs/export.md says where it comes from.
_AUTO_MAP = {"AutoConfig": "modeling_deepseekocr2.DeepseekOCR2Config",
             "AutoModel": "modeling_deepseekocr2.DeepseekOCR2ForCausalLM"}
_LANGUAGE_AUTO_MAP = {"AutoConfig": "configuration_deepseekv2.DeepseekV2Config",
                      "AutoModel": "modeling_deepseek.DeepseekV2Model",
                      "AutoModelForCausalLM": "modeling_deepseek.DeepseekV2ForCausalLM"}

# DeepseekV2Config defaults for keys the release's config.json leaves out: (DeepseekV2 name, ocr2 field, default).
_DEFAULTED = (("rope_theta", "rope_theta", 10_000.0), ("norm_topk_prob", "norm_topk_prob", False),
              ("routed_scaling_factor", "routed_scaling_factor", 1.0), ("rms_norm_eps", "rms_norm_eps", 1e-6),
              ("aux_loss_alpha", "aux_loss_alpha", 0.001), ("max_position_embeddings", "max_position_embeddings", 2048),
              ("first_k_dense_replace", "first_k_dense", 0))
# Keys every release-style config.json carries: (DeepseekV2 name, ocr2 field).
_REQUIRED = (("vocab_size", "vocab_size"), ("hidden_size", "hidden_size"), ("num_hidden_layers", "num_layers"),
             ("num_attention_heads", "num_heads"), ("intermediate_size", "intermediate_size"),
             ("moe_intermediate_size", "moe_intermediate_size"), ("n_routed_experts", "n_routed_experts"),
             ("num_experts_per_tok", "num_experts_per_tok"))
# What ocr2's decoder is (MHA/GQA without MLA, softmax greedy top-k in every layer after the dense ones, SiLU,
# separate lm_head); a config.json asking for something else describes another model.
_FIXED = (("use_mla", (False, None)), ("kv_lora_rank", (None,)), ("q_lora_rank", (None,)),
          ("scoring_func", ("softmax",)), ("topk_method", ("greedy",)), ("moe_layer_freq", (1,)),
          ("hidden_act", ("silu",)), ("attention_bias", (False,)), ("tie_word_embeddings", (False,)))


# ---------------------------------------------------------------------------------------------------- read
def config_from_official(raw: dict) -> OCR2Config:
    """OCR2Config from the release's config.json (ValueError naming the key for what ocr2 cannot build)."""
    lang = raw.get("language_config") or {}

    def get(key, default=None):
        return lang[key] if key in lang else raw.get(key, default)

    missing = [k for k, _ in _REQUIRED if get(k) is None]
    if missing:
        raise ValueError(f"language_config lacks {missing}, so the decoder's shape is unknown")
    wrong = {k: get(k) for k, allowed in _FIXED if (k in lang or k in raw) and get(k) not in allowed}
    if wrong:
        raise ValueError(f"language_config asks for what ocr2's decoder does not implement: {wrong}")

    base = OCR2Config.from_dict(raw[OCR2_KEY]) if isinstance(raw.get(OCR2_KEY), dict) else OCR2Config()
    decoder = {
        **base.to_dict()["decoder"],
        **{ours: get(theirs) for theirs, ours in _REQUIRED},
        **{ours: get(theirs, default) for theirs, ours, default in _DEFAULTED},
        "num_kv_heads": get("num_key_value_heads") or get("num_attention_heads"),  # DeepseekV2Config: None is MHA
        "n_shared_experts": get("n_shared_experts") or 0,
    }
    ids = {f"{k}_token_id": get(f"{k}_token_id") for k in ("bos", "eos", "pad")}
    ids = {k: v for k, v in ids.items() if v is not None}  # absent: the release tokenizer's ids stand
    # from_dict checks each value's type, naming the field.
    cfg = OCR2Config.from_dict({**base.to_dict(), "decoder": decoder, **ids})
    if isinstance(raw.get(OCR2_KEY), dict) and "decoder" in raw[OCR2_KEY]:
        # Both blocks describe the decoder; a hand-edited one of them would make ocr2 and the release's loader
        # build different models from one folder.
        pairs = {f.name: (getattr(base.decoder, f.name), getattr(cfg.decoder, f.name))
                 for f in dataclasses.fields(DecoderConfig)}
        differ = {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}
        if differ:
            raise ValueError(f"language_config and {OCR2_KEY}.decoder disagree ({OCR2_KEY}, language_config): {differ}")
    return cfg


# ---------------------------------------------------------------------------------------------------- write
def _language_config(cfg: OCR2Config, dtype_name: str) -> dict:
    d = cfg.decoder
    lang = {
        "architectures": ["DeepseekV2ForCausalLM"], "auto_map": dict(_LANGUAGE_AUTO_MAP),
        "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id, "first_k_dense_replace": d.first_k_dense,
        "hidden_size": d.hidden_size, "intermediate_size": d.intermediate_size, "kv_lora_rank": None,
        "lm_head": True, "max_position_embeddings": d.max_position_embeddings,
        "moe_intermediate_size": d.moe_intermediate_size, "n_group": 1, "n_routed_experts": d.n_routed_experts,
        "n_shared_experts": d.n_shared_experts or None, "num_attention_heads": d.num_heads,
        "num_experts_per_tok": d.num_experts_per_tok, "num_hidden_layers": d.num_layers,
        "num_key_value_heads": d.num_kv_heads, "q_lora_rank": None, "qk_nope_head_dim": 0, "qk_rope_head_dim": 0,
        "rm_head": False, "topk_group": 1, "topk_method": "greedy", "torch_dtype": dtype_name, "use_mla": False,
        "v_head_dim": 0, "vocab_size": d.vocab_size,
    }
    # The release leaves these to DeepseekV2Config's defaults; a value that differs must be spelled out, or every
    # reader (the release's loader, vLLM, ocr2) would build the default.
    for theirs, ours, default in _DEFAULTED:
        if theirs not in lang and getattr(d, ours) != default:
            lang[theirs] = getattr(d, ours)
    if cfg.pad_token_id != OCR2Config().pad_token_id:
        lang["pad_token_id"] = cfg.pad_token_id
    return dict(sorted(lang.items()))


def config_to_official(cfg: OCR2Config, dtype_name: str) -> dict:
    """The release's config.json for `cfg` (weights stored as `dtype_name`, e.g. "bfloat16"), plus `ocr2_config`."""
    v, e = cfg.vision, cfg.encoder
    lang = _language_config(cfg, dtype_name)
    top = {k: val for k, val in lang.items() if k not in ("architectures", "auto_map", "torch_dtype")}
    return {
        "architectures": [ARCHITECTURE],
        "auto_map": dict(_AUTO_MAP),
        "candidate_resolutions": [[cfg.global_view_size, cfg.global_view_size]],
        "global_view_pos": "head",  # ignored by the release's code (crops always come first); kept as it has it
        "language_config": lang,
        "model_type": MODEL_TYPE,
        "projector_config": {"input_dim": e.hidden_size, "model_type": "mlp_projector",
                             "n_embed": cfg.decoder.hidden_size, "projector_type": "linear"},
        "tile_tag": "2D",
        "torch_dtype": dtype_name,
        # Ignored by the release's code (its vision stack is hard-coded); written with this model's true values in
        # the release's shape. `mlp_ratio` 3.7362 is the release's own (unused) number.
        "vision_config": {"image_size": v.image_size, "mlp_ratio": 3.7362, "model_name": "deepencoderv2",
                          "model_type": "vision",
                          "width": {"qwen2-0-5b": {"dim": e.hidden_size},
                                    "sam_vit_b": {"downsample_channels": list(v.compressor_channels),
                                                  "global_attn_indexes": list(v.global_attn_indexes),
                                                  "heads": v.num_heads, "layers": v.depth, "width": v.width}}},
        **top,
        OCR2_KEY: cfg.to_dict(),
    }

"""The transformers port of DeepSeek-OCR 2 as a numerical oracle: tiny random configs, no download.

`tiny_port_model()` builds a random `DeepseekOcr2ForConditionalGeneration` with the official view geometry
(1024 global -> 256 tokens, 768 crops -> 144 tokens: the port picks its query table by `num_patches <= 144` and
uses every row, so the parity config must produce exactly 144/256 visual tokens) and small widths.
`ours_from_port()` maps its weights into an `OCR2Model` through the explicit key map in ocr2.keymaps.port.
"""

from __future__ import annotations

import torch

from ocr2 import OCR2Model
from ocr2.keymaps import port as port_keys


def tiny_port_config(attn: str = "eager"):
    from transformers.models.deepseek_ocr2 import DeepseekOcr2Config

    cfg = DeepseekOcr2Config(
        vision_config={
            "sam_config": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, output_channels=16,
                               downsample_channels=[24, 48], global_attn_indexes=[1], image_size=1024,
                               patch_size=16, window_size=14),
            "encoder_config": dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   intermediate_size=96, vocab_size=32,
                                   rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}),
        },
        text_config=dict(vocab_size=300, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=4, intermediate_size=160, moe_intermediate_size=24, n_routed_experts=8,
                         n_shared_experts=2, num_experts_per_tok=3, mlp_layer_types=["dense", "sparse", "sparse"],
                         max_position_embeddings=4096, bos_token_id=0, eos_token_id=1, pad_token_id=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 10_000.0}),
        image_token_id=5,
    )
    cfg._attn_implementation = attn
    for sub in (cfg.vision_config, cfg.vision_config.sam_config, cfg.vision_config.encoder_config, cfg.text_config):
        sub._attn_implementation = attn
    return cfg


def randomise_(module: torch.nn.Module, seed: int = 0, std: float = 0.05) -> None:
    """The port zero-initialises rel-pos tables, pos_embed and biases; random values make parity meaningful."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight") and p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def tiny_port_model(seed: int = 0, attn: str = "eager"):
    from transformers.models.deepseek_ocr2 import DeepseekOcr2ForConditionalGeneration

    torch.manual_seed(seed)
    model = DeepseekOcr2ForConditionalGeneration(tiny_port_config(attn)).eval()
    randomise_(model, seed)
    return model


def port_state_to_ours(port_model) -> dict[str, torch.Tensor]:
    state = port_model.state_dict()
    unexpected: list[str] = []
    ours = dict(port_keys.convert(list(state), state.__getitem__, unexpected))
    assert not unexpected, unexpected
    return ours


def ours_from_port(port_model, attn_implementation: str = "eager") -> OCR2Model:
    import dataclasses

    cfg = port_keys.config_from_port(port_model.config.to_dict())
    cfg = dataclasses.replace(cfg, attn_implementation=attn_implementation,
                              eos_token_id=1, pad_token_id=2, bos_token_id=0)
    model = OCR2Model(cfg).eval()
    model.load_state_dict(port_state_to_ours(port_model), strict=True)
    return model

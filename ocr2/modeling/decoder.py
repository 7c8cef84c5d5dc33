"""DeepSeek-MoE decoder (the DeepSeek-OCR v1/v2 "DeepSeek-3B-A570M" language model) with a KV cache.

Llama-style blocks with multi-head attention (no biases), RoPE theta 1e4 over plain positions 0..L-1 (image
placeholders included), dense SwiGLU in the first `first_k_dense` layers and DeepSeekMoE after them.
"""

from __future__ import annotations

import torch
from torch import nn

from ocr2.config import DecoderConfig
from ocr2.modeling.attention import causal_attention
from ocr2.modeling.mhc import expand_streams, reduce_streams
from ocr2.modeling.moe import MoE
from ocr2.modeling.transformer import Block, RMSNorm, RotaryEmbedding, SelfAttention, SwiGLU


class KVCache:
    """Per-layer keys/values, grown by concatenation along the sequence axis; plus the key padding mask."""

    def __init__(self, num_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.key_mask: torch.Tensor | None = None  # (B, L) bool, None when nothing is padded

    def __len__(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class MoEDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.cfg = cfg
        self.attn_implementation = "eager" if attn_implementation == "eager" else "sdpa"
        h = cfg.hidden_size
        self.embed_tokens = nn.Embedding(cfg.vocab_size, h)
        self.layers = nn.ModuleList(
            Block(h, SelfAttention(h, cfg.num_heads, cfg.num_kv_heads, qkv_bias=False),
                  SwiGLU(h, cfg.intermediate_size) if i < cfg.first_k_dense else MoE(cfg), cfg.rms_norm_eps,
                  cfg.residual, cfg.hc_streams)
            for i in range(cfg.num_layers)
        )
        self.norm = RMSNorm(h, cfg.rms_norm_eps)
        self.rotary = RotaryEmbedding(h // cfg.num_heads, cfg.rope_theta)
        self.gradient_checkpointing = False

    def forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None, cache: KVCache | None = None,
                sequence_ids: torch.Tensor | None = None) -> torch.Tensor:
        """inputs_embeds (B, L, h); position_ids (B, L); attention_mask (B, L_past + L) bool/int, 1 = real token.

        With a cache, the new tokens' keys/values are appended and attention spans past + new tokens."""
        key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_mask = attention_mask.bool()
        if cache is not None:
            cache.key_mask = key_mask
        cos, sin = self.rotary(position_ids, inputs_embeds.dtype)
        x = inputs_embeds if self.cfg.residual == "residual" else expand_streams(inputs_embeds, self.cfg.hc_streams)
        for i, layer in enumerate(self.layers):
            attend = self._attend_fn(i, cache, key_mask, sequence_ids)
            if self.gradient_checkpointing and self.training and cache is None:
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, attend, use_reentrant=False)
            else:
                x = layer(x, cos, sin, attend)
        return self.norm(x if self.cfg.residual == "residual" else reduce_streams(x))

    def _attend_fn(self, layer: int, cache: KVCache | None, key_mask: torch.Tensor | None,
                   sequence_ids: torch.Tensor | None):
        backend = self.attn_implementation

        def attend(q, k, v):
            if cache is not None:
                k, v = cache.update(layer, k, v)
            return causal_attention(q, k, v, key_mask=key_mask, backend=backend, sequence_ids=sequence_ids)

        return attend

    def aux_loss(self) -> torch.Tensor | None:
        losses = [m.mlp.aux_loss for m in self.layers if isinstance(m.mlp, MoE) and m.mlp.aux_loss is not None]
        return torch.stack(losses).sum() if losses else None

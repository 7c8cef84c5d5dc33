"""DeepSeek-MoE decoder (the DeepSeek-OCR v1/v2 "DeepSeek-3B-A570M" language model) with a KV cache.

Llama-style blocks with multi-head attention (no biases), RoPE theta 1e4 over plain positions 0..L-1 (image
placeholders included), dense SwiGLU in the first `first_k_dense` layers and DeepSeekMoE after them.
"""

from __future__ import annotations

import torch
from torch import nn

from ocr2.config import DecoderConfig
from ocr2.modeling.attention import DecoderMaskForm, decoder_attention, decoder_mask_form
from ocr2.modeling.decoder_mask import DecoderMask
from ocr2.modeling.mhc import expand_streams, reduce_streams
from ocr2.modeling.moe import MoE
from ocr2.modeling.transformer import RMSNorm, RotaryEmbedding, SelfAttention, SwiGLU, TransformerBlock, layer_rope


class KVCache:
    """Per-layer keys/values in preallocated buffers, plus the key padding mask.

    Each layer's buffer (B, H, capacity, D) is written in place and `update` returns views of the filled part, so
    a decoding step copies only the new token's k/v instead of the whole history (`torch.cat`). `capacity` is the
    most positions the cache will hold (greedy decoding: prompt + max_new_tokens - 1, since the last token is
    never fed back): the first update allocates exactly that, once. Without one (or past it) a buffer grows to
    what is needed, doubling, which copies the history: callers that know their length should give it."""

    def __init__(self, num_layers: int, capacity: int | None = None):
        self.keys: list[torch.Tensor | None] = [None] * num_layers  # buffers; filled part is [:, :, :lengths[i]]
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.lengths = [0] * num_layers
        self.capacity = capacity
        self.key_mask: torch.Tensor | None = None  # (B, L) bool, None when nothing is padded

    def __len__(self) -> int:
        return self.lengths[0]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.lengths[layer]
        end = start + k.shape[2]
        buf_k, buf_v = self.keys[layer], self.values[layer]
        if buf_k is None or end > buf_k.shape[2]:
            if buf_k is None:
                size = max(end, self.capacity or 0)
            else:
                size = max(end, 2 * buf_k.shape[2])
            new_k, new_v = self._new_buffer(k, size), self._new_buffer(v, size)
            if start:
                new_k[:, :, :start] = buf_k[:, :, :start]
                new_v[:, :, :start] = buf_v[:, :, :start]
            self.keys[layer], self.values[layer] = buf_k, buf_v = new_k, new_v
        buf_k[:, :, start:end] = k
        buf_v[:, :, start:end] = v
        self.lengths[layer] = end
        return buf_k[:, :, :end], buf_v[:, :, :end]

    def _new_buffer(self, like: torch.Tensor, size: int) -> torch.Tensor:
        return like.new_empty(*like.shape[:2], size, like.shape[3])


class MoEDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.cfg = cfg
        # The encoder-only two-call form has nothing to split in a causal decoder: it runs as plain SDPA.
        self.attn_implementation = "sdpa" if attn_implementation == "sdpa_split" else attn_implementation
        h = cfg.hidden_size
        self.embed_tokens = nn.Embedding(cfg.vocab_size, h)
        self.layers = nn.ModuleList(
            TransformerBlock(h, SelfAttention(h, cfg.num_heads, cfg.num_kv_heads, qkv_bias=False),
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

        With a cache, the new tokens' keys/values are appended and attention spans past + new tokens. The mask
        rule and its backend form are built here, once, and shared by every layer."""
        rule = DecoderMask.build(inputs_embeds.shape[1], attention_mask, len(cache) if cache is not None else 0,
                                 sequence_ids)
        if cache is not None:
            cache.key_mask = rule.key_mask
        form = decoder_mask_form(rule, self.attn_implementation, inputs_embeds)
        checkpointed = self.gradient_checkpointing and self.training and cache is None
        return self._layers(inputs_embeds, position_ids, lambda i: self._attend_fn(i, cache, form), checkpointed)

    def forward_static(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor, cache,
                       index: torch.Tensor) -> torch.Tensor:
        """One decoding step over a `StaticKVCache` (ocr2/modeling/static_cache.py): inputs_embeds (B, 1, h),
        position_ids (B, 1), index (1,) the cache slot of this token. Every shape is fixed from step to step,
        so `torch.compile` can capture it; the mask is built from `index` on the device (no host sync)."""
        visible = cache.visible(index)
        return self._layers(inputs_embeds, position_ids,
                            lambda i: cache.step_attend_fn(i, index, visible, self.attn_implementation), False)

    def _layers(self, inputs_embeds, position_ids, attend_for, checkpointed: bool) -> torch.Tensor:
        cos, sin = self.rotary(position_ids, inputs_embeds.dtype)
        cos, sin = layer_rope(cos, sin)  # the layers' RoPE form, built once for all layers
        x = inputs_embeds if self.cfg.residual == "residual" else expand_streams(inputs_embeds, self.cfg.hc_streams)
        for i, layer in enumerate(self.layers):
            attend = attend_for(i)
            if checkpointed:
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, attend, use_reentrant=False)
            else:
                x = layer(x, cos, sin, attend)
        return self.norm(x if self.cfg.residual == "residual" else reduce_streams(x))

    @staticmethod
    def _attend_fn(layer: int, cache: KVCache | None, form: DecoderMaskForm):
        def attend(q, k, v):
            if cache is not None:
                k, v = cache.update(layer, k, v)
            return decoder_attention(q, k, v, form)

        return attend

    def aux_loss(self) -> torch.Tensor | None:
        losses = [m.mlp.aux_loss for m in self.layers if isinstance(m.mlp, MoE) and m.mlp.aux_loss is not None]
        return torch.stack(losses).sum() if losses else None


def positions_from_mask(attention_mask: torch.Tensor | None, length: int, past: int = 0,
                        device=None) -> torch.Tensor:
    """Decoder positions for the newest `length` tokens: 0.. over real tokens, so left padding shifts nothing."""
    if attention_mask is None:
        return torch.arange(past, past + length, device=device)[None]
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.clamp_min(0)[:, -length:]


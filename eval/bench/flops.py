"""Model FLOPs of the benchmark workloads, attention included, for achieved FLOP/s and MFU.

Matmul-like work counts 2 FLOPs per multiply-add:
  * parameters: 2 x (parameters a token uses) x (tokens through them), from the module tree of an `OCR2Model`
    (build one on the meta device: only shapes are read). SAM blocks and the neck see every 16x16 patch, each
    stride-2 compressor conv a quarter of its input positions, the encoder [visual ; queries] per view, the
    projector the kept outputs, the decoder every position with top-k of its routed experts, the LM head the
    positions whose logits the workload needs (the labelled ones in training, the last one when generating);
  * attention: QK^T and PV, 2 x 2 x head_dim per (query, key) pair per head, over the pairs the mask allows
    (SAM windowed blocks: every window of the padded grid, window² pairs each; SAM global blocks: all patch
    pairs; encoder: the pairs of its mask spec; decoder: causal pairs, or the cache plus itself per decoded
    token). SAM's decomposed relative-position terms, softmax, norms and activations are not counted.
Backward is 2x forward, so a training step is 3x its forward.
"""

from __future__ import annotations

import dataclasses
import math

from ocr2 import OCR2Config


@dataclasses.dataclass
class Flops:
    """Forward FLOPs split into parameter matmuls and attention scores (QK^T + PV)."""

    params: float = 0.0
    attention: float = 0.0

    @property
    def total(self) -> float:
        return self.params + self.attention

    def __add__(self, other: "Flops") -> "Flops":
        return Flops(self.params + other.params, self.attention + other.attention)

    def __mul__(self, k: float) -> "Flops":
        return Flops(self.params * k, self.attention * k)

    __rmul__ = __mul__


def _n(module) -> int:
    return sum(p.numel() for p in module.parameters())


def pair_flops(pairs: float, heads: int, head_dim: int) -> float:
    """QK^T (2·d per pair) plus PV (2·d per pair), per head."""
    return 4.0 * pairs * heads * head_dim


def sam_attention_pairs(cfg: OCR2Config, view_size: int) -> tuple[float, float]:
    """(pairs in one windowed block, pairs in one global block) for one view."""
    v = cfg.vision
    grid = view_size // v.patch_size
    side = math.ceil(grid / v.window_size) * v.window_size  # SAM pads the grid to whole windows
    windows = (side // v.window_size) ** 2
    return windows * float(v.window_size ** 2) ** 2, float(grid * grid) ** 2


def encoder_pairs(cfg: OCR2Config, view_size: int) -> float:
    from ocr2.modeling.masks import get_mask_spec

    n_visual, n_query = cfg.vision.tokens_for(view_size), cfg.num_queries(view_size)
    return float(get_mask_spec(cfg.encoder.mask).dense(n_visual, n_query).sum())


def vision_forward(cfg: OCR2Config, model, crops: int, pages: int = 1) -> Flops:
    """SAM tokenizer + DeepEncoder V2 + projector over `pages` x (global view + `crops` crops)."""
    v, e = cfg.vision, cfg.encoder
    vt = model.vision_tokenizer
    out = Flops()
    for size in [cfg.global_view_size] + [cfg.crop_size] * crops:
        patches = (size // v.patch_size) ** 2
        params = (_n(vt.patch_embed) + _n(vt.blocks) + _n(vt.neck)) * patches
        for i, name in enumerate(vt.compressor_names):
            params += _n(getattr(vt, name)) * patches / 4 ** (i + 1)
        tokens = v.tokens_for(size) + cfg.num_queries(size)
        params += _n(model.encoder.layers) * tokens + _n(model.projector) * cfg.view_output_tokens(size)
        windowed, global_ = sam_attention_pairs(cfg, size)
        n_global = len(v.global_attn_indexes)
        sam_pairs = (v.depth - n_global) * windowed + n_global * global_
        attn = (pair_flops(sam_pairs, v.num_heads, v.width // v.num_heads)
                + e.num_layers * pair_flops(encoder_pairs(cfg, size), e.num_heads, e.hidden_size // e.num_heads))
        out = out + Flops(2.0 * params, attn)
    return out * pages


def decoder_active_params(cfg: OCR2Config, model) -> float:
    """Decoder layer parameters one token uses: all but the routed experts it is not sent to (no embedding)."""
    d = cfg.decoder
    experts = sum(_n(layer.mlp.experts) for layer in model.decoder.layers if hasattr(layer.mlp, "experts"))
    return _n(model.decoder.layers) - experts * (1 - d.num_experts_per_tok / d.n_routed_experts)


def decoder_forward(cfg: OCR2Config, model, positions: int, head_positions: int, batch: int = 1) -> Flops:
    """The decoder over `positions` new tokens with causal attention among them (no cache), the head over
    `head_positions` of them."""
    d = cfg.decoder
    params = decoder_active_params(cfg, model) * positions + _n(model.lm_head) * head_positions
    pairs = positions * (positions + 1) / 2
    attn = d.num_layers * pair_flops(pairs, d.num_heads, d.hidden_size // d.num_heads)
    return Flops(2.0 * params, attn) * batch


def decode_step(cfg: OCR2Config, model, cache_len: int, batch: int = 1) -> Flops:
    """One new token per row over `cache_len` cached positions (it attends to them and to itself)."""
    d = cfg.decoder
    params = decoder_active_params(cfg, model) + _n(model.lm_head)
    attn = d.num_layers * pair_flops(cache_len + 1, d.num_heads, d.hidden_size // d.num_heads)
    return Flops(2.0 * params, attn) * batch


def decode_step_bytes(cfg: OCR2Config, model, cache_len: int, element_size: int = 4) -> tuple[float, float]:
    """(weight bytes, KV-cache bytes) one decode step must read at batch 1: every decoder parameter the token uses
    (the routed experts it is not sent to excepted) and the whole LM head, then keys and values of every cached
    position in every layer. Its floor in time is their sum over the streaming bandwidth (eval/bench/peak.py):
    each weight is used once, for two FLOPs, so nothing is reused from cache."""
    d = cfg.decoder
    weights = (decoder_active_params(cfg, model) + _n(model.lm_head)) * element_size
    kv = d.num_layers * 2 * cache_len * d.num_kv_heads * (d.hidden_size // d.num_heads) * element_size
    return float(weights), float(kv)


def train_step(cfg: OCR2Config, model, crops: int, positions: int, labelled: int) -> Flops:
    """Forward + backward (3x forward) of one page: vision path, decoder, head over the labelled positions."""
    return 3 * (vision_forward(cfg, model, crops) + decoder_forward(cfg, model, positions, labelled))


def generate(cfg: OCR2Config, model, crops: int, prompt: int, new_tokens: int) -> Flops:
    """Vision path + prefill of the prompt (head on its last position) + `new_tokens - 1` decode steps."""
    out = vision_forward(cfg, model, crops) + decoder_forward(cfg, model, prompt, 1)
    for t in range(new_tokens - 1):
        out = out + decode_step(cfg, model, prompt + t)
    return out

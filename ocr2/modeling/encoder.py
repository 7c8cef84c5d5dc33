"""DeepEncoder V2: a Qwen2 stack used as a vision encoder with learnable causal-flow queries (paper §3.2.2).

Per view: x = [visual tokens (raster order) ; flow queries], positions 0..L-1, 1-D RoPE (theta 1e6; other position
schemes and a train-time shuffle of the visual order: ocr2/modeling/positions.py), attention
under a `MaskSpec`, final RMSNorm, then only the outputs the spec keeps (officially: the queries, a re-ordered
1-D sequence) go on. One query table per view size (768 crops: 144, 1024 global: 256), shared by every view
of that size ("All local views share a unified set of 144 query embeddings", paper §3.2.3).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ocr2.config import EncoderConfig
from ocr2.modeling.attention import encoder_attention, encoder_mask, resolve_backend
from ocr2.modeling.masks import get_mask_spec
from ocr2.modeling.mhc import expand_streams, reduce_streams
from ocr2.modeling.positions import check_schemes, encoder_rope, random_raster_order
from ocr2.modeling.transformer import RMSNorm, RotaryEmbedding, SelfAttention, SwiGLU, TransformerBlock, layer_rope


class DeepEncoderV2(nn.Module):
    def __init__(self, cfg: EncoderConfig, query_counts: dict[int, int], attn_implementation: str = "sdpa"):
        """query_counts: view size in pixels -> number of flow queries for views of that size."""
        super().__init__()
        self.cfg = cfg
        self.spec = get_mask_spec(cfg.mask)
        check_schemes(cfg.visual_positions, cfg.query_positions)
        self.attn_implementation = attn_implementation
        h = cfg.hidden_size
        self.layers = nn.ModuleList(
            TransformerBlock(h, SelfAttention(h, cfg.num_heads, cfg.num_kv_heads, qkv_bias=True),
                             SwiGLU(h, cfg.intermediate_size), cfg.rms_norm_eps, cfg.residual, cfg.hc_streams)
            for _ in range(cfg.num_layers)
        )
        self.norm = RMSNorm(h, cfg.rms_norm_eps)
        self.rotary = RotaryEmbedding(h // cfg.num_heads, cfg.rope_theta)
        # Keyed by the view size as a string (ParameterDict keys must be str): `flow_queries.768`.
        self.flow_queries = nn.ParameterDict(
            {str(size): nn.Parameter(torch.zeros(n, h)) for size, n in query_counts.items()}
            if self.spec.use_queries else {}
        )
        self.gradient_checkpointing = False

    def queries_for(self, view_size: int) -> torch.Tensor:
        key = str(view_size)
        if key not in self.flow_queries:
            raise ValueError(f"no flow-query table for {view_size}px views; tables exist for "
                             f"{sorted(int(k) for k in self.flow_queries)} (EncoderConfig.query_view_sizes)")
        return self.flow_queries[key]

    def forward(self, visual: torch.Tensor, view_size: int, attend=None) -> torch.Tensor:
        """visual (B, n_v, hidden) for views of `view_size` px -> the kept outputs (B, n_out, hidden).

        `attend(q, k, v, n_visual)` replaces the configured attention (hooks that record the reading path)."""
        b, n_visual, _ = visual.shape
        order = None
        if self.training and self.cfg.shuffle_visual:  # ocr2/modeling/positions.py: train-time only
            order = random_raster_order(b, n_visual, visual.device)
            visual = visual.gather(1, order[..., None].expand_as(visual))
        x = visual
        if self.spec.use_queries:
            queries = self.queries_for(view_size).to(visual.dtype)
            x = torch.cat([visual, queries.unsqueeze(0).expand(b, -1, -1)], dim=1)
        cos, sin = encoder_rope(self.rotary, n_visual, x.shape[1] - n_visual, self.cfg.visual_positions,
                                self.cfg.query_positions, x.dtype, x.device)
        cos, sin = layer_rope(cos, sin)  # the layers' RoPE form, built once for all layers
        if attend is None:
            # The mask's backend form is built once here and shared by every layer (it depends only on the
            # spec, n_visual and the length).
            backend = resolve_backend(self.attn_implementation, x, "encoder")
            mask = encoder_mask(self.spec, n_visual, x.shape[1], backend, x.device)
            attend = partial(encoder_attention, spec=self.spec, n_visual=n_visual, backend=backend, mask=mask)
        else:
            attend = partial(attend, n_visual=n_visual)
        if self.cfg.residual != "residual":
            x = expand_streams(x, self.cfg.hc_streams)
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, attend, use_reentrant=False)
            else:
                x = layer(x, cos, sin, attend)
        if self.cfg.residual != "residual":
            x = reduce_streams(x)
        x = self.norm(x)
        if self.spec.keep == "queries":
            return x[:, n_visual:]
        kept = x[:, :n_visual]
        if order is not None:  # back to raster order: the shuffle is the encoder's, not the decoder's
            kept = torch.empty_like(kept).scatter_(1, order[..., None].expand_as(kept), kept)
        return kept

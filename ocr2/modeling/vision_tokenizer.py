"""The vision tokenizer: a SAM ViT-B style windowed ViT, its neck, and the 16x convolutional compressor.

Pixels (B, 3, H, W) -> patch grid (B, H/16, W/16, width) -> 12 pre-norm blocks (mostly windowed, a few global)
-> neck (B, 256, H/16, W/16) -> two stride-2 convs -> (B, 896, H/64, W/64) -> raster-ordered tokens (B, n, 896).
SAM-base settings: width 768, 12 heads, MLP ratio 4, 14x14 windows, global attention in blocks 2, 5, 8, 11.
A 1024 global view gives a 64x64 grid and 16x16 = 256 tokens; a 768 crop 48x48 and 12x12 = 144 tokens.

Module and parameter names deliberately follow the official checkpoint (`model.sam_model.*`), so loading it is a
pure prefix swap `model.sam_model.` -> `vision_tokenizer.`: `patch_embed.proj`, `pos_embed`, `blocks.{i}.norm1`,
`blocks.{i}.attn.{qkv,proj,rel_pos_h,rel_pos_w}`, `blocks.{i}.norm2`, `blocks.{i}.mlp.{lin1,lin2}`,
`neck.{0,1,2,3}`, `net_2`, `net_3`.

Behaviours that must match the checkpoint exactly (they silently change outputs otherwise):
- Windowed blocks zero-pad the grid AFTER norm1 and do not mask the padded cells: inside edge windows those cells
  are ordinary keys/values (their k and v are just the qkv bias) and receive rel-pos bias like any other key.
- Non-native grids (768 crops -> 48x48 at a 64x64 table) resize the absolute table with antialiased bicubic
  interpolation in float32, and resize the global blocks' rel-pos tables with 1-D linear interpolation (float32).
- The rel-pos bias is computed from the UNSCALED query and added unscaled; only q.k gets 1/sqrt(head_dim).
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint
from einops import rearrange

from ocr2.config import VisionTokenizerConfig
from ocr2.modeling.recompute import rebuilt_in_backward
from ocr2.modeling.rel_pos_attention import rel_pos_attention, rel_pos_factors

# ----------------------------------------------------------------------------------------- derived-tensor memo


def _memoised(owner: nn.Module, key: tuple, param: torch.Tensor, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """`compute()` (a tensor derived from `param`), remembered per `key` when no autograd graph is needed.

    While autograd must flow into `param` we always recompute, so gradients reach the parameter. Otherwise (eval
    under no_grad / inference_mode, or a frozen parameter) the result is reused until `param` changes: the stamp
    holds its version counter (bumped by optimiser steps and `load_state_dict`'s in-place copies), its storage,
    dtype and device (which change with `.to()`), and whether we are in inference mode (inference tensors must not
    leak into later autograd use). One entry per key, so a changing parameter never grows the memo.
    """
    if torch.is_grad_enabled() and param.requires_grad:
        return compute()
    stamp = (param._version, param.data_ptr(), param.dtype, param.device, torch.is_inference_mode_enabled())
    memo = owner.__dict__.setdefault("_derived_memo", {})
    hit = memo.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    value = compute()
    memo[key] = (stamp, value)
    return value


@functools.lru_cache(maxsize=64)
def _relative_index(q_size: int, k_size: int, device: torch.device) -> torch.Tensor:
    """(q_size, k_size) long indices into a (2*max(q,k)-1)-row rel-pos table, as in SAM's `get_rel_pos`.

    When q and k lengths differ, the shorter axis' coordinates are stretched to the longer one before taking the
    difference, and the float result is truncated with `.long()`; float32 arithmetic mirrors the original so
    truncation agrees on non-integer cases. Built outside inference mode so the cached tensor stays usable by
    autograd later (indexing saves its indices for backward).
    """
    with torch.inference_mode(False):
        q_scale = max(k_size / q_size, 1.0)
        k_scale = max(q_size / k_size, 1.0)
        q_coords = torch.arange(q_size, dtype=torch.float32, device=device)[:, None] * q_scale
        k_coords = torch.arange(k_size, dtype=torch.float32, device=device)[None, :] * k_scale
        return ((q_coords - k_coords) + (k_size - 1) * k_scale).long()


def _resize_rel_pos(table: torch.Tensor, length: int) -> torch.Tensor:
    """Linearly resample a (L, head_dim) table to (length, head_dim) along L, in float32, back in its dtype."""
    if table.shape[0] == length:
        return table
    resized = F.interpolate(rearrange(table.float(), "l d -> 1 d l"), size=length, mode="linear")
    return rearrange(resized, "1 d l -> l d").to(table.dtype)


# ----------------------------------------------------------------------------------------- building blocks


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection; output stays channels-last (B, h, w, C) as the blocks expect."""

    def __init__(self, patch_size: int, in_chans: int, width: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, width, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return rearrange(self.proj(pixel_values), "b c h w -> b h w c")


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a channels-first map, per pixel, with affine weight/bias.

    The original computes mean/variance by hand; normalising the channels-last view with `F.layer_norm` is the
    same function (biased variance, eps inside the sqrt).
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(x, "b c h w -> b h w c")
        x = F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        return rearrange(x, "b h w c -> b c h w")


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.lin1 = nn.Linear(width, hidden)
        self.act = nn.GELU()  # exact (erf) GELU, not the tanh approximation
        self.lin2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin1(x)
        a = self.act(h)
        # GELU's backward keeps h; lin2 would keep a as well, a second hidden-sized tensor (recompute.py).
        with rebuilt_in_backward((a, lambda: self.act(h))):
            return self.lin2(a)


class Attention(nn.Module):
    """Multi-head self-attention over a (B, h, w, C) grid with decomposed relative position bias (MViTv2).

    `table_size` is the grid side the rel-pos tables are trained for: the full grid for global blocks, the
    window side for windowed ones (windowed blocks always see exactly that size, so they never resize).
    """

    def __init__(self, width: int, num_heads: int, table_size: int):
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        head_dim = width // num_heads
        self.qkv = nn.Linear(width, 3 * width, bias=True)
        self.proj = nn.Linear(width, width)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * table_size - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * table_size - 1, head_dim))

    def _rel_table(self, axis: str, q_size: int, k_size: int) -> torch.Tensor:
        """(q_size, k_size, head_dim) embeddings of every query/key offset along one axis."""
        table = self.rel_pos_h if axis == "h" else self.rel_pos_w

        def compute() -> torch.Tensor:
            resized = _resize_rel_pos(table, 2 * max(q_size, k_size) - 1)
            return resized[_relative_index(q_size, k_size, table.device)]

        return _memoised(self, (axis, q_size, k_size), table, compute)

    def forward(self, x: torch.Tensor, window_size: int = 0) -> torch.Tensor:
        """(B, h, w, C) -> (B, h, w, C): attention over the whole grid, or (window_size > 0) within each
        window_size² window of the grid zero-padded to whole windows (see `_window_qkv`)."""
        _, h, w, _ = x.shape
        qkv = self.qkv(x)
        if window_size:
            q, k, v = self._window_qkv(qkv, window_size)
            gh = gw = window_size
        else:
            q, k, v = rearrange(qkv, "b h w (three n d) -> three b n (h w) d", three=3, n=self.num_heads)
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()  # the kernel's layout: it keeps these three
            gh, gw = h, w

        # Bias from the unscaled query: bias[q=(i, j), k=(m, l)] = q . Rh[i, m] + q . Rw[j, l]; only q.k gets
        # 1/sqrt(head_dim). The two terms stay factored: the (L, L) bias is never materialised on CPU.
        q_grid = rearrange(q, "b n (h w) d -> b n h w d", h=gh, w=gw)
        tables = self._rel_table("h", gh, gh), self._rel_table("w", gw, gw)
        rel_h, rel_w = (t.flatten(2, 3) for t in rel_pos_factors(q_grid, *tables))

        def factor(i: int):
            return lambda: rel_pos_factors(q_grid, *tables)[i].flatten(2, 3)

        # The kernel keeps both factors for backward; they are two small einsums over the query it keeps.
        with rebuilt_in_backward((rel_h, factor(0)), (rel_w, factor(1))):
            attended = rel_pos_attention(q, k, v, rel_h, rel_w)

        def heads_last() -> torch.Tensor:
            out = rearrange(attended, "b n (h w) d -> b h w (n d)", h=gh, w=gw)
            if window_size:
                nh, nw = -(-h // window_size), -(-w // window_size)
                # Only the real cells go through proj: the padded ones' outputs are dropped anyway.
                out = rearrange(out, "(b nh nw) s1 s2 c -> b (nh s1) (nw s2) c", nh=nh, nw=nw)[:, :h, :w]
            return out.contiguous()

        out = heads_last()
        # The kernel keeps its output for backward; proj's copy of it in this layout is rebuilt from that.
        with rebuilt_in_backward((out, heads_last)):
            return self.proj(out)

    def _window_qkv(self, qkv: torch.Tensor, s: int) -> torch.Tensor:
        """(B, h, w, 3C) projections of the real cells -> q, k, v stacked, (3, B * windows, heads, s * s,
        head_dim), of the grid zero-padded to whole s x s windows.

        Checkpoint quirk: the grid is zero-padded after norm1 and the padded cells are never masked (module
        docstring). The projection of a zero row is exactly the qkv bias, so the padded cells get the bias here
        instead of running the qkv GEMM over them (a 64x64 grid pads to 70x70, +20% rows; a 48x48 crop to 56x56,
        +36%). One rearrange goes straight to the kernel's layout (a single copy, no intermediate windows)."""
        _, h, w, _ = qkv.shape
        pad_h, pad_w = -h % s, -w % s
        if pad_h or pad_w:
            qkv = F.pad(qkv, (0, 0, 0, pad_w, 0, pad_h))
            qkv[:, h:] = self.qkv.bias
            qkv[:, :h, w:] = self.qkv.bias
        return rearrange(qkv, "b (nh s1) (nw s2) (three n d) -> three (b nh nw) n (s1 s2) d", s1=s, s2=s, three=3,
                         n=self.num_heads)


class ViTBlock(nn.Module):
    """Pre-norm transformer block; `window_size` 0 means global attention over the whole grid."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, eps: float, window_size: int, grid: int):
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.attn = Attention(width, num_heads, table_size=window_size if window_size > 0 else grid)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, int(width * mlp_ratio))

    def _windowed_attention(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, window_size=self.window_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Each LayerNorm keeps its input for backward and the next linear would keep its output too: the output
        # is rebuilt from the input instead (one pass, the same kernel, so the same values; recompute.py).
        y = self.norm1(x)
        with rebuilt_in_backward((y, lambda: self.norm1(x))):
            mid = x + (self._windowed_attention(y) if self.window_size > 0 else self.attn(y))
        z = self.norm2(mid)
        with rebuilt_in_backward((z, lambda: self.norm2(mid))):
            return mid + self.mlp(z)


# ----------------------------------------------------------------------------------------- the tokenizer


def _builds_graph(block: nn.Module, x: torch.Tensor) -> bool:
    """Whether autograd records `block(x)`: only then is checkpointing worth it (checkpoint saves its inputs
    even when nothing needs a gradient, i.e. for a frozen block)."""
    return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in block.parameters()))



class VisionTokenizer(nn.Module):
    """SAM ViT-B + neck + stride-2 conv compressor; `forward` returns raster-ordered visual tokens (B, n, C)."""

    def __init__(self, config: VisionTokenizerConfig):
        super().__init__()
        self.config = config
        if config.image_size % config.patch_size:
            raise ValueError(f"image_size {config.image_size} is not a multiple of patch_size {config.patch_size}")
        if not config.compressor_channels:
            raise ValueError("compressor_channels must name at least one conv")
        grid = config.image_size // config.patch_size
        self.patch_embed = PatchEmbed(config.patch_size, 3, config.width)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, config.width))
        global_idx = set(config.global_attn_indexes)
        self.blocks = nn.ModuleList(
            ViTBlock(config.width, config.num_heads, config.mlp_ratio, config.layer_norm_eps,
                     window_size=0 if i in global_idx else config.window_size, grid=grid)
            for i in range(config.depth)
        )
        c = config.neck_channels
        self.neck = nn.Sequential(
            nn.Conv2d(config.width, c, kernel_size=1, bias=False),
            LayerNorm2d(c, eps=config.layer_norm_eps),
            nn.Conv2d(c, c, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(c, eps=config.layer_norm_eps),
        )
        # The official names are net_2 and net_3 (numbering starts at 2 in the release); keep that scheme for any
        # number of convs so the 2-conv case maps onto the checkpoint unchanged.
        self.compressor_names: tuple[str, ...] = tuple(f"net_{i + 2}" for i in range(len(config.compressor_channels)))
        in_ch = c
        for name, out_ch in zip(self.compressor_names, config.compressor_channels):
            setattr(self, name, nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1, bias=False))
            in_ch = out_ch
        # Stage 1 trains the tokenizer: its blocks' activations (the 64x64 grid of a 1024² view) are the largest
        # of the model. When set (OCR2Model.set_gradient_checkpointing), each block keeps only its input.
        self.gradient_checkpointing = False
        self.init_weights()

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """Truncated-normal linears, unit LayerNorms, default (Kaiming) convs, small random position tables.

        Position tables are random rather than zero (SAM's own init) so that a freshly built model, and tests on
        it, actually exercise the position paths.
        """
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, LayerNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                m.reset_parameters()
            elif isinstance(m, Attention):
                nn.init.normal_(m.rel_pos_h, std=std)
                nn.init.normal_(m.rel_pos_w, std=std)
        nn.init.normal_(self.pos_embed, std=std)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """The absolute table for an (h, w) grid, (1, h, w, width); resized (antialiased bicubic, fp32) if needed."""
        table = self.pos_embed
        if table.shape[1:3] == (h, w):
            return table

        def compute() -> torch.Tensor:
            resized = F.interpolate(rearrange(table.float(), "1 h w c -> 1 c h w"), size=(h, w), mode="bicubic",
                                    align_corners=False, antialias=True)
            return rearrange(resized, "1 c h w -> 1 h w c").to(table.dtype)

        return _memoised(self, ("pos_embed", h, w), table, compute)

    def feature_map(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels -> (B, C, H/downsample, W/downsample) compressor output (channels-first)."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"expected pixel_values of shape (B, 3, H, W), got {tuple(pixel_values.shape)}")
        ph, pw = pixel_values.shape[-2:]
        p = self.config.patch_size
        if ph % p or pw % p:
            raise ValueError(f"image size {ph}x{pw} is not a multiple of the patch size {p}")
        x = self.patch_embed(pixel_values.to(self.patch_embed.proj.weight.dtype))
        x = x + self.position_embedding(x.shape[1], x.shape[2])
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and _builds_graph(block, x):
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        x = self.neck(rearrange(x, "b h w c -> b c h w"))
        for name in self.compressor_names:
            x = getattr(self, name)(x)  # no activation or norm between/after the convs (as released)
        return x

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels -> (B, n, C) visual tokens in row-major (raster) order of the output grid."""
        return rearrange(self.feature_map(pixel_values), "b c h w -> b (h w) c")

    def num_tokens(self, height: int, width: int) -> int:
        """Tokens for an (height, width) view: each stride-2 conv (k3, p1) maps a side n to ceil(n / 2)."""
        h, w = height // self.config.patch_size, width // self.config.patch_size
        for _ in self.compressor_names:
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        return h * w

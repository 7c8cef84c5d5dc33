"""Pre-norm transformer pieces shared by DeepEncoder V2 (Qwen2) and the DeepSeek-MoE decoder (Llama-style).

Both stacks are `x + attn(norm(x))`, then `x + ffn(norm(x))` with RMSNorm and rotate-half RoPE; they differ
only in widths, q/k/v bias, GQA, the RoPE base and the feed-forward (SwiGLU or MoE). How a layer attends
(the encoder's mask spec, the decoder's causal mask and KV cache) is passed in as a function, so no mask
logic lives inside the layers.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ocr2.modeling.mhc import RESIDUALS, HyperConnection

AttendFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 then cast back before the gain, as Qwen2 / DeepSeek do (matters in bf16).
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


class RotaryEmbedding(nn.Module):
    """1-D rotate-half RoPE over the full head dimension."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.head_dim, self.theta = head_dim, theta
        self.register_buffer("inv_freq", self._inv_freq(None), persistent=False)

    def _inv_freq(self, device) -> torch.Tensor:
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=device) / self.head_dim
        return 1.0 / (self.theta ** exponents)

    def rebuild_buffers(self, device) -> None:
        """Frequencies are not stored in checkpoints; recompute them after a meta-device build."""
        self.inv_freq = self._inv_freq(device)

    def _apply(self, fn, recurse=True):
        # `model.to(bf16)`, `.half()` and DeepSpeed's bf16 cast reach buffers through here. A bf16 inv_freq moves
        # positions by radians at long range (and from_pretrained rebuilds it in fp32, so training and
        # inference would disagree): follow the device, never the dtype.
        super()._apply(fn, recurse)
        if self.inv_freq.dtype != torch.float32 and not self.inv_freq.is_meta:
            self.inv_freq = self._inv_freq(self.inv_freq.device)
        return self

    def _frequencies(self, device) -> torch.Tensor:
        inv_freq = self.inv_freq
        if inv_freq.dtype != torch.float32:  # cast behind _apply's back (e.g. `buf.data = buf.data.to(...)`)
            inv_freq = self._inv_freq(inv_freq.device)
        return inv_freq.to(device)

    @torch.no_grad()
    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids (B, L) or (L,) -> cos, sin of shape (B or 1, 1, L, head_dim), computed in fp32."""
        if position_ids.dim() == 1:
            position_ids = position_ids[None]
        freqs = position_ids[..., None].float() * self._frequencies(position_ids.device)
        emb = torch.cat([freqs, freqs], dim=-1)[:, None]
        return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, qkv_bias: bool):
        super().__init__()
        if dim % num_heads or num_heads % num_kv_heads:
            raise ValueError(f"hidden {dim} / heads {num_heads} / kv heads {num_kv_heads} do not divide")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, num_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(dim, num_kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(dim, num_kv_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(num_heads * self.head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attend: AttendFn) -> torch.Tensor:
        q = rearrange(self.q_proj(x), "b l (h d) -> b h l d", d=self.head_dim)
        k = rearrange(self.k_proj(x), "b l (h d) -> b h l d", d=self.head_dim)
        v = rearrange(self.v_proj(x), "b l (h d) -> b h l d", d=self.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = attend(q, k, v)
        return self.o_proj(rearrange(out, "b h l d -> b l (h d)"))


class TransformerBlock(nn.Module):
    """Pre-norm residual block; `mlp` is a SwiGLU or an MoE.

    `residual` = "residual" (plain), or "hc" / "mhc" (hyper-connections over `streams` residual streams, one per
    sub-layer, ocr2.modeling.mhc); with hyper-connections x is (..., streams, dim)."""

    def __init__(self, dim: int, attn: SelfAttention, mlp: nn.Module, eps: float, residual: str = "residual",
                 streams: int = 4):
        super().__init__()
        self.input_layernorm = RMSNorm(dim, eps)
        self.self_attn = attn
        self.post_attention_layernorm = RMSNorm(dim, eps)
        self.mlp = mlp
        if residual not in RESIDUALS:
            raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}")
        self.attn_hc = HyperConnection(dim, streams, residual) if residual != "residual" else None
        self.ffn_hc = HyperConnection(dim, streams, residual) if residual != "residual" else None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attend: AttendFn) -> torch.Tensor:
        if self.attn_hc is None:
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, attend)
            return x + self.mlp(self.post_attention_layernorm(x))
        x = self.attn_hc(x, lambda h: self.self_attn(self.input_layernorm(h), cos, sin, attend))
        return self.ffn_hc(x, lambda h: self.mlp(self.post_attention_layernorm(h)))

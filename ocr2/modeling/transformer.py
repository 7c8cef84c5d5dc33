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
from torch import nn

from ocr2.modeling.fused_linear import FusedProjection
from ocr2.modeling.mhc import RESIDUALS, HyperConnection
from ocr2.modeling.recompute import rebuilt_in_backward

AttendFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 then cast back before the gain, as Qwen2 / DeepSeek do (matters in bf16). One fused
        # `rms_norm` call instead of the 8-op pow/mean/add/rsqrt chain (each op a kernel launch while decoding).
        dtype = x.dtype
        if dtype == torch.float32 and self.weight.dtype == torch.float32:
            # fp32 throughout: normalise-then-gain is one call (there is no cast between them to keep).
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        return self.weight * F.rms_norm(x.float(), self.weight.shape, eps=self.eps).to(dtype)


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
        return inv_freq if inv_freq.device == device else inv_freq.to(device)

    @torch.no_grad()
    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids (B, L) or (L,) -> cos, sin of shape (B or 1, 1, L, head_dim), computed in fp32."""
        if position_ids.dim() == 1:
            position_ids = position_ids[None]
        freqs = position_ids[..., None].float() * self._frequencies(position_ids.device)
        emb = torch.cat([freqs, freqs], dim=-1)[:, None]
        cos, sin = emb.cos(), emb.sin()
        return (cos, sin) if dtype == torch.float32 else (cos.to(dtype), sin.to(dtype))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE, the reference form (7 ops); the layers run `apply_rope_signed` (4 ops, same values)."""
    return x * cos + _rotate_half(x) * sin


def layer_rope(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`RotaryEmbedding`'s (cos, sin), (B or 1, 1, L, D), in the form the layers take: (B or 1, L, 1, D), heads
    after positions as the projections produce them, and sin with its first half negated, so that
    rotate_half(x) * sin == swap_halves(x) * signed sin exactly (rotate_half is swap_halves with the first half
    negated, and (-a) * b == a * (-b) in IEEE arithmetic). Built once per forward by the stack (decoder, encoder)
    and shared by every layer."""
    half = sin.shape[-1] // 2
    signed = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)
    return cos.transpose(1, 2), signed.transpose(1, 2)


def apply_rope_signed(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """`apply_rope(x, cos, sin)` bit for bit, given the signed sin of `layer_rope`: one copy (the half swap, a flip of a
    (2, D/2) view) and three elementwise ops, with the same roundings in the same order as the reference."""
    swapped = x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)
    return x * cos + swapped * sin_signed


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate_proj(x), self.up_proj(x)
        s = F.silu(g)
        # SiLU's backward keeps g and the product keeps u; silu(g) and silu(g) * u, which the product and
        # down_proj would keep besides, are rebuilt from them in backward (recompute.py): 4 hidden-sized
        # tensors kept become 2.
        with rebuilt_in_backward((s, lambda: F.silu(g))):
            p = s * u
        with rebuilt_in_backward((p, lambda: F.silu(g) * u)):
            return self.down_proj(p)


class SelfAttention(nn.Module):
    """Multi-head / grouped-query self-attention with RoPE; `cos, sin` come from `layer_rope`.

    Without gradients to track (decoding, evaluation) q, k and v come from one matmul over the three weights
    concatenated (`FusedProjection`, cached until a weight changes), and RoPE runs once over q and k together
    (they are adjacent heads of that output); in training they stay three projections, so the autograd graph,
    what it saves and LoRA's wrapping of `q_proj` / `k_proj` / `v_proj` are unchanged."""

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
        self.qkv = FusedProjection()

    def _apply(self, fn, recurse=True):
        # A device or dtype move (`.to(...)`, `.half()`): the fused copy is of the old tensors (and keeps their storage
        # alive).
        self.qkv.clear()
        return super()._apply(fn, recurse)

    def project(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """x (B, L, dim) -> q (B, H, L, D), k, v (B, Hkv, L, D), RoPE applied to q and k (views, not copies,
        of the rotated and projected tensors)."""
        b, l, _ = x.shape
        h, hkv, d = self.num_heads, self.num_kv_heads, self.head_dim
        fused = self.qkv.output(x, self.q_proj, self.k_proj, self.v_proj)
        if fused is not None:
            qkv = fused.view(b, l, h + 2 * hkv, d)
            qk = apply_rope_signed(qkv[:, :, :h + hkv], cos, sin).transpose(1, 2)
            q, k = qk.split([h, hkv], dim=1)
            return q, k, qkv[:, :, h + hkv:].transpose(1, 2)
        q = apply_rope_signed(self.q_proj(x).view(b, l, h, d), cos, sin)
        k = apply_rope_signed(self.k_proj(x).view(b, l, hkv, d), cos, sin)
        return q.transpose(1, 2), k.transpose(1, 2), self.v_proj(x).view(b, l, hkv, d).transpose(1, 2)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attend: AttendFn) -> torch.Tensor:
        q, k, v = self.project(x, cos, sin)
        out = attend(q, k, v)
        return self.o_proj(out.transpose(1, 2).flatten(2))


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

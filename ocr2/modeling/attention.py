"""One attention entry point for the encoder and the decoder, over interchangeable backends.

Shapes: q (B, H, Lq, D); k, v (B, Hkv, Lk, D) with H a multiple of Hkv (grouped-query attention).

Backends
- `eager`: explicit softmax(q k^T * scale + additive mask); the numerical reference. The mask is an additive
  float tensor (0 keep, finfo.min block) — never a boolean added as 0/1.
- `sdpa`: torch's scaled_dot_product_attention with a dense boolean mask built (vectorised) from the spec.
- `sdpa_split`: the encoder's hybrid mask as two mask-free calls (ARCHITECTURE.md "Attention without an n²
  mask"): visual rows × visual keys (non-causal, or causal for raster variants), then query rows × all keys,
  causal aligned to the bottom-right corner. No (L, L) mask is materialised.
- `flex`: FlexAttention with the spec's `allowed` rule as its `mask_mod`; the block mask is built once per
  (spec, n_visual, length, device) and cached. Compiled on CUDA; on CPU torch runs it unfused and, as of torch
  2.13, forward only (inference) — training on CPU raises a clear error.
- `flash`: flash-attn (CUDA, fp16/bf16, imported lazily): the same two calls as `sdpa_split` for the hybrid
  mask; in the decoder the varlen form for packed samples (never attending across samples) and for padding.
- `auto`: the best available for the tensors at hand: `flash` on CUDA in half precision when flash-attn
  imports, otherwise `sdpa_split` (encoder) / `sdpa` (decoder).

Specs or inputs a kernel cannot express (e.g. a mask spec with no two-call form under `flash`) run on dense SDPA,
which is exact for every spec.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

from ocr2.modeling.masks import MaskSpec

BACKENDS = ("eager", "sdpa", "sdpa_split", "flex", "flash", "auto")


def _check(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose from {BACKENDS}")


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


# ----------------------------------------------------------------------------------------- availability


@functools.lru_cache(maxsize=None)
def _flash_module():
    """flash-attn's functional API, or None when it is not installed (it builds only with CUDA)."""
    try:
        import flash_attn
    except ImportError:
        return None
    return flash_attn


def flash_available(device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> bool:
    """flash-attn importable, and (when given) a CUDA device and a half-precision dtype it can run."""
    if device is not None and torch.device(device).type != "cuda":
        return False
    if dtype is not None and dtype not in (torch.float16, torch.bfloat16):
        return False
    return _flash_module() is not None


def resolve_backend(backend: str, q: torch.Tensor, role: str = "encoder") -> str:
    """The concrete backend `auto` stands for with these tensors; other names are returned unchanged."""
    _check(backend)
    if backend != "auto":
        return backend
    if flash_available(q.device, q.dtype):
        return "flash"
    return "sdpa_split" if role == "encoder" else "sdpa"


# ----------------------------------------------------------------------------------------- dense kernels


def eager_attention(q, k, v, mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """mask: boolean "may attend", broadcastable to (B, H, Lq, Lk), or None."""
    n_rep = q.shape[1] // k.shape[1]
    k, v = _repeat_kv(k, n_rep), _repeat_kv(v, n_rep)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask is not None:
        additive = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
        additive.masked_fill_(~mask, torch.finfo(scores.dtype).min)
        scores = scores + additive
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v)


def _sdpa(q, k, v, mask=None, is_causal=False, scale=None) -> torch.Tensor:
    gqa = q.shape[1] != k.shape[1]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale,
                                          enable_gqa=gqa)


def _dense(q, k, v, mask, backend: str, scale: float) -> torch.Tensor:
    if backend == "eager":
        return eager_attention(q, k, v, mask, scale)
    return _sdpa(q, k, v, mask=mask, scale=scale)


# ----------------------------------------------------------------------------------------- flex


@functools.lru_cache(maxsize=None)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    # Default dynamism: a second sequence length (a new view size, a longer KV cache) recompiles once with dynamic
    # shapes instead of once per length.
    return torch.compile(flex_attention)


def _flex(q, k, v, block_mask, scale: float) -> torch.Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    if q.device.type == "cpu" and torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        raise NotImplementedError(
            f"attention backend 'flex' cannot train on CPU: FlexAttention in torch {torch.__version__} runs CPU "
            "inference only (no backward). Use 'sdpa_split' or 'sdpa' on CPU, 'flex' on CUDA.")
    kernel = _compiled_flex() if q.device.type == "cuda" else flex_attention
    return kernel(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])


@functools.lru_cache(maxsize=64)
def _encoder_block_mask(spec: MaskSpec, n_visual: int, length: int, device: torch.device):
    """The spec's rule as a FlexAttention block mask, built once per (spec, n_visual, length, device)."""
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q_idx, kv_idx):
        return spec.allowed(q_idx, kv_idx, n_visual)

    return create_block_mask(mask_mod, None, None, length, length, device=device)


def _causal_mask_mod(offset: int, key_mask: torch.Tensor | None, sequence_ids: torch.Tensor | None):
    """The decoder rule of `causal_attention` as a mask_mod: causal aligned bottom-right (query i sits at key
    position i + offset), within one packed sample, padding keys hidden but every token sees itself."""

    def mask_mod(b, h, q_idx, kv_idx):
        pos = q_idx + offset
        own = kv_idx == pos
        keep = kv_idx <= pos
        if sequence_ids is not None:
            keep = keep & (sequence_ids[b, pos] == sequence_ids[b, kv_idx])
        if key_mask is not None:
            keep = keep & key_mask[b, kv_idx]
        return keep | own

    return mask_mod


@functools.lru_cache(maxsize=16)
def _plain_causal_block_mask(lq: int, lk: int, device: torch.device):
    from torch.nn.attention.flex_attention import create_block_mask

    return create_block_mask(_causal_mask_mod(lk - lq, None, None), None, None, lq, lk, device=device)


class _LastDecoderBlockMask:
    """The block mask for the last (key_mask, sequence_ids, lq, lk) seen. Every decoder layer of one forward
    passes the very same tensors, so the data-dependent mask is built once per forward, not once per layer."""

    def __init__(self):
        self.entry: tuple | None = None  # (key_mask, sequence_ids, stamp, block mask)

    @staticmethod
    def _version(t: torch.Tensor | None) -> int:
        # Inference tensors keep no version counter; they cannot change outside inference mode anyway.
        return -1 if t is None or t.is_inference() else t._version

    def get(self, key_mask, sequence_ids, lq: int, lk: int, device: torch.device):
        from torch.nn.attention.flex_attention import create_block_mask

        stamp = (self._version(key_mask), self._version(sequence_ids), lq, lk, device)
        hit = self.entry
        if hit is not None and hit[0] is key_mask and hit[1] is sequence_ids and hit[2] == stamp:
            return hit[3]
        batch = (key_mask if key_mask is not None else sequence_ids).shape[0]
        mod = _causal_mask_mod(lk - lq, None if key_mask is None else key_mask.bool(), sequence_ids)
        block_mask = create_block_mask(mod, batch, None, lq, lk, device=device)
        self.entry = (key_mask, sequence_ids, stamp, block_mask)
        return block_mask


_last_decoder_mask = _LastDecoderBlockMask()


# ----------------------------------------------------------------------------------------- flash


def _require_flash(q: torch.Tensor):
    if not flash_available(q.device, q.dtype):
        why = ("flash-attn is not installed" if _flash_module() is None
               else f"flash-attn runs CUDA fp16/bf16 only, got {q.device.type} {q.dtype}")
        raise RuntimeError(f"attention backend 'flash' is unavailable: {why}; use 'auto' to fall back")
    return _flash_module()


def _flash(q, k, v, causal: bool, scale: float) -> torch.Tensor:
    """flash_attn_func on (B, H, L, D) tensors; its causal mask is aligned bottom-right when Lq != Lk."""
    fa = _require_flash(q)
    out = fa.flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=causal,
                             softmax_scale=scale)
    return out.transpose(1, 2)


def _flash_varlen_causal(q, k, v, q_keep: torch.Tensor, k_keep: torch.Tensor, q_segments: torch.Tensor,
                         k_segments: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal attention of the kept queries over the kept keys, per segment, with flash_attn_varlen_func.

    q_keep (B, Lq), k_keep (B, Lk) bool: tokens that take part; q_segments / k_segments (B, L) long: a segment
    id per token, non-decreasing along each row over kept tokens (one id per packed sample, or per row). Rows
    of dropped queries get their own value (what the eager rule gives a token that sees only itself)."""
    fa = _require_flash(q)
    b, h, lq, d = q.shape
    qf, kf, vf = (t.transpose(1, 2).reshape(-1, t.shape[1], d) for t in (q, k, v))
    q_idx, k_idx = q_keep.reshape(-1).nonzero().squeeze(1), k_keep.reshape(-1).nonzero().squeeze(1)
    cu_q, max_q = _cu_seqlens(q_segments, q_keep)
    cu_k, max_k = _cu_seqlens(k_segments, k_keep)
    out = fa.flash_attn_varlen_func(qf[q_idx], kf[k_idx], vf[k_idx], cu_q, cu_k, max_q, max_k,
                                    softmax_scale=scale, causal=True)
    full = torch.empty_like(qf)
    full[q_idx] = out
    dropped = (~q_keep).reshape(-1).nonzero().squeeze(1)
    if dropped.numel():
        # Only when Lq == Lk (a dropped query is a padded position whose own key sits at the same index).
        full[dropped] = vf[dropped].repeat_interleave(h // k.shape[1], dim=1)
    return full.reshape(b, lq, h, d).transpose(1, 2)


def _cu_seqlens(segments: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Cumulative lengths (int32, leading 0) of the runs of equal (row, segment) over kept tokens."""
    rows = torch.arange(segments.shape[0], device=segments.device)[:, None].expand_as(segments)
    seg = segments * segments.shape[0] + rows  # unique per (row, segment); rows never merge
    seg = seg.reshape(-1)[keep.reshape(-1)]
    _, counts = torch.unique_consecutive(seg, return_counts=True)
    cu = F.pad(counts.cumsum(0), (1, 0)).to(torch.int32)
    return cu, int(counts.max()) if counts.numel() else 0


# ----------------------------------------------------------------------------------------- encoder


def encoder_attention(q, k, v, spec: MaskSpec, n_visual: int, backend: str = "sdpa",
                      scale: float | None = None) -> torch.Tensor:
    """Self-attention over one view's `[visual ; queries]` sequence under a reading-order mask spec."""
    backend = resolve_backend(backend, q, "encoder")
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    length = q.shape[2]
    if backend == "flex":
        return _flex(q, k, v, _encoder_block_mask(spec, n_visual, length, q.device), scale)
    two_calls = backend in ("sdpa_split", "flash")
    split = spec.split_form() if two_calls and spec.use_queries else None
    if split is None:
        if two_calls and not spec.use_queries and spec.visual_to_visual in ("full", "causal"):
            causal = spec.visual_to_visual == "causal"
            if backend == "flash":
                return _flash(q, k, v, causal=causal, scale=scale)
            return _sdpa(q, k, v, is_causal=causal, scale=scale)
        idx = torch.arange(length, device=q.device)
        mask = spec.allowed(idx[:, None], idx[None, :], n_visual)
        return _dense(q, k, v, mask, "eager" if backend == "eager" else "sdpa", scale)

    visual_rule, query_rule = split
    q_rows = q[:, :, n_visual:]
    if backend == "flash":
        out_v = _flash(q[:, :, :n_visual], k[:, :, :n_visual], v[:, :, :n_visual], causal=visual_rule == "causal",
                       scale=scale)
        out_q = _flash(q_rows, k, v, causal=query_rule == "causal", scale=scale)
        return torch.cat([out_v, out_q], dim=2)
    out_v = _sdpa(q[:, :, :n_visual], k[:, :, :n_visual], v[:, :, :n_visual],
                  is_causal=visual_rule == "causal", scale=scale)
    bias = causal_lower_right(q_rows.shape[2], length) if query_rule == "causal" else None
    out_q = _sdpa(q_rows, k, v, mask=bias, scale=scale)
    return torch.cat([out_v, out_q], dim=2)


# ----------------------------------------------------------------------------------------- decoder


def causal_attention(q, k, v, key_mask: torch.Tensor | None = None, backend: str = "sdpa",
                     scale: float | None = None, sequence_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Decoder self-attention: causal, aligned bottom-right (the last query is the newest token, so a
    KV cache of earlier tokens just lengthens k, v), plus an optional key padding mask (B, Lk) bool.

    `sequence_ids` (B, L) marks packed samples (no cache): a token attends only within its own sample,
    so several samples share one row without seeing each other."""
    backend = resolve_backend(backend, q, "decoder")
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    lq, lk = q.shape[2], k.shape[2]
    if sequence_ids is not None and lq != lk:
        raise ValueError("packed sequences (sequence_ids) cannot be combined with a KV cache")
    if backend == "flex":
        if key_mask is None and sequence_ids is None:
            block_mask = _plain_causal_block_mask(lq, lk, q.device)
        else:
            block_mask = _last_decoder_mask.get(key_mask, sequence_ids, lq, lk, q.device)
        return _flex(q, k, v, block_mask, scale)
    if backend == "flash":
        out = _flash_causal(q, k, v, key_mask, sequence_ids, scale)
        if out is not None:
            return out
        backend = "sdpa"
    if sequence_ids is not None:
        pos = torch.arange(lk, device=q.device)
        same = sequence_ids[:, :, None] == sequence_ids[:, None, :]
        mask = ((pos[None, :] <= pos[:, None])[None] & same) | torch.eye(lk, dtype=torch.bool, device=q.device)
        if key_mask is not None:
            mask = mask & (key_mask[:, None, :].bool() | torch.eye(lk, dtype=torch.bool, device=q.device))
        return _dense(q, k, v, mask[:, None], backend, scale)
    if key_mask is None and backend != "eager":
        if lq == lk:
            return _sdpa(q, k, v, is_causal=True, scale=scale)
        if lq == 1:
            return _sdpa(q, k, v, scale=scale)
    qpos = torch.arange(lk - lq, lk, device=q.device)
    kpos = torch.arange(lk, device=q.device)
    mask = (kpos[None, :] <= qpos[:, None])[None, None]
    if key_mask is not None:
        # Padding keys are hidden; a padding query still sees itself so that no row is empty (an empty
        # row is NaN in SDPA, and NaN values leak through 0-probability products into real rows).
        own = (kpos[None, :] == qpos[:, None])[None, None]
        mask = mask & (key_mask[:, None, None, :].bool() | own)
    return _dense(q, k, v, mask, backend, scale)


def _flash_causal(q, k, v, key_mask, sequence_ids, scale) -> torch.Tensor | None:
    """The decoder rule on flash-attn, or None where its kernels cannot express it exactly (then SDPA runs)."""
    lq, lk = q.shape[2], k.shape[2]
    if key_mask is None and sequence_ids is None:
        return _flash(q, k, v, causal=True, scale=scale)
    if sequence_ids is not None and key_mask is not None:
        return None  # padding inside packed rows: rare; the dense rule is exact
    if sequence_ids is not None:
        # Packed samples: each run of equal ids in a row is one varlen sequence (causal within it).
        keep = torch.ones_like(sequence_ids, dtype=torch.bool)
        if not bool((sequence_ids[:, 1:] >= sequence_ids[:, :-1]).all()):
            return None  # ids that come back after another sample: not contiguous runs
        return _flash_varlen_causal(q, k, v, keep, keep, sequence_ids, sequence_ids, scale)
    # Padding: drop padded tokens, one varlen sequence per row over its real tokens.
    key_mask = key_mask.bool()
    q_keep = key_mask[:, lk - lq:]
    if lq != lk and not bool(q_keep.all()):
        return None
    zeros_q, zeros_k = torch.zeros_like(q_keep, dtype=torch.long), torch.zeros_like(key_mask, dtype=torch.long)
    return _flash_varlen_causal(q, k, v, q_keep, key_mask, zeros_q, zeros_k, scale)

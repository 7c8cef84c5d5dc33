"""One attention entry point for the encoder and one for the decoder, over interchangeable backends.

Shapes: q (B, H, Lq, D); k, v (B, Hkv, Lk, D) with H a multiple of Hkv (grouped-query attention).

Backends
- `eager`: explicit softmax(q k^T * scale + additive mask); the numerical reference. The mask is an additive
  float tensor (0 keep, finfo.min block) — never a boolean added as 0/1.
- `sdpa`: torch's scaled_dot_product_attention with a dense boolean mask built (vectorised) from the rule. On
  CUDA the encoder runs it as `sdpa_split` (same rule, no mask: a dense mask with GQA gets only SDPA's math kernel
  there); the decoder keeps its masks (it has no GQA, and its plain causal case is mask-free anyway).
- `sdpa_split`: the encoder's hybrid mask as two mask-free calls, so no (L, L) mask is materialised: visual
  rows x visual keys (non-causal, or causal for raster variants), then query rows x all keys, causal aligned
  to the bottom-right corner (the last query row sees every key).
- `flex`: FlexAttention with the rule's predicate as its `mask_mod`. Compiled on CUDA; on CPU torch runs it
  unfused and, as of torch 2.13, forward only (inference) — training on CPU raises a clear error.
- `flash`: flash-attn (CUDA, fp16/bf16, imported lazily): the same two calls as `sdpa_split` for the hybrid
  mask; in the decoder the varlen form for packed samples (never attending across samples) and for padding.
- `auto`: the best available for the tensors at hand: `flash` on CUDA in half precision when flash-attn
  imports, otherwise `sdpa_split` (encoder) / `sdpa` (decoder).

Masks are rules (`MaskSpec` for the encoder, `DecoderMask` for the decoder); each backend's form of the rule
(dense mask, block mask, varlen plan) is built once per model forward by the caller and passed to every layer
(`encoder_mask`, `decoder_mask_form`). Nothing is cached between forwards. Rules or inputs a kernel cannot
express (e.g. a mask spec with no two-call form under `flash`) run on dense SDPA, which is exact for every rule.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ocr2.modeling.decoder_mask import DecoderMask, VarlenPlan
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


FLASH_MIN_CAPABILITY = (8, 0)  # flash-attn 2 runs on Ampere (sm80) and newer


def flash_available(device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> bool:
    """flash-attn importable, and (when given) a CUDA device of compute capability sm80+ and a half-precision
    dtype it can run. (On a V100 / T4 flash-attn imports but its kernels refuse to launch.)"""
    if _flash_module() is None:
        return False
    if device is not None:
        device = torch.device(device)
        if device.type != "cuda" or torch.cuda.get_device_capability(device) < FLASH_MIN_CAPABILITY:
            return False
    return dtype is None or dtype in (torch.float16, torch.bfloat16)


def resolve_backend(backend: str, q: torch.Tensor, role: str = "encoder") -> str:
    """The concrete backend `auto` (or the encoder's `sdpa` on CUDA) stands for with these tensors; other names
    are returned unchanged."""
    _check(backend)
    if backend == "sdpa" and role == "encoder" and q.device.type == "cuda":
        # The default. A dense boolean mask with GQA leaves CUDA's SDPA only its math kernel (the (L, L) scores
        # materialised per head); the two mask-free calls compute the same rule on the fused kernels. Specs
        # without that form still run the dense mask. CPU keeps the dense call: the reference parity runs.
        return "sdpa_split"
    if backend != "auto":
        return backend
    # Under autocast the projections produce the autocast dtype, so a caller resolving once per forward from
    # the (fp32) hidden states still picks what the layers' q will run.
    device = q.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else q.dtype
    if flash_available(q.device, dtype):
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


def lower_right_causal_mask(q_len: int, kv_len: int, device: torch.device) -> torch.Tensor:
    """The queries' causal rule over [visual ; queries] as a boolean mask: query i sees every key up to
    kv_len - q_len + i."""
    return torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len)


def _lower_right_causal(q_len: int, kv_len: int, device: torch.device):
    """The rule `lower_right_causal_mask` states, in the form SDPA runs fastest: on CUDA torch's
    `causal_lower_right` bias, which its flash and memory-efficient kernels take without a mask; elsewhere the
    boolean mask it would materialise itself (torch has no CPU kernel for it). Imported here, not at the top:
    `torch.nn.attention.bias` imports torch._dynamo, about a second of start-up for every process that imports
    ocr2 (each `ocr2-train`, `ocr2-eval`, `ocr2-infer` command)."""
    if device.type != "cuda":
        return lower_right_causal_mask(q_len, kv_len, device)
    from torch.nn.attention.bias import causal_lower_right

    return causal_lower_right(q_len, kv_len)


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


# ----------------------------------------------------------------------------------------- flash


def _require_flash(q: torch.Tensor):
    if not flash_available(q.device, q.dtype):
        why = ("flash-attn is not installed" if _flash_module() is None
               else f"flash-attn runs CUDA sm80+ in fp16/bf16 only, got {q.device.type} {q.dtype}")
        raise RuntimeError(f"attention backend 'flash' is unavailable: {why}; use 'auto' to fall back")
    return _flash_module()


def _flash(q, k, v, causal: bool, scale: float) -> torch.Tensor:
    """flash_attn_func on (B, H, L, D) tensors; its causal mask is aligned bottom-right when Lq != Lk."""
    fa = _require_flash(q)
    out = fa.flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=causal,
                             softmax_scale=scale)
    return out.transpose(1, 2)


def _has_kvcache_leftpad(fa) -> bool:
    """flash_attn_with_kvcache with `cache_leftpad` (flash-attn >= 2.6): attention over a left-padded cache in
    place, without gathering its real keys."""
    fn = getattr(fa, "flash_attn_with_kvcache", None)
    return fn is not None and "cache_leftpad" in inspect.signature(fn).parameters


def _flash_kvcache(q, k, v, leftpad: torch.Tensor, scale: float) -> torch.Tensor:
    """New queries over a left-padded KV cache: row b attends to keys leftpad[b]..Lk-1, causal bottom-right.
    k, v are views of the cache's buffers; transposed to flash's (B, L, H, D) they stay views (no copy)."""
    fa = _require_flash(q)
    out = fa.flash_attn_with_kvcache(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                     cache_seqlens=k.shape[2], cache_leftpad=leftpad, softmax_scale=scale,
                                     causal=True)
    return out.transpose(1, 2)


def _flash_varlen(q, k, v, plan: VarlenPlan, scale: float) -> torch.Tensor:
    """Causal attention per varlen sequence of `plan` with flash_attn_varlen_func. Rows of dropped queries
    (padding) get their own value: what the rule gives a token that sees only itself."""
    fa = _require_flash(q)
    b, h, lq, d = q.shape
    qf, kf, vf = (t.transpose(1, 2).reshape(-1, t.shape[1], d) for t in (q, k, v))
    out = fa.flash_attn_varlen_func(qf[plan.q_index], kf[plan.k_index], vf[plan.k_index], plan.cu_q, plan.cu_k,
                                    plan.max_q, plan.max_k, softmax_scale=scale, causal=True)
    full = torch.empty_like(qf)
    full[plan.q_index] = out
    if plan.dropped.numel():
        # Only when Lq == Lk (a dropped query is a padded position whose own key sits at the same index).
        full[plan.dropped] = vf[plan.dropped].repeat_interleave(h // k.shape[1], dim=1)
    return full.reshape(b, lq, h, d).transpose(1, 2)


# ----------------------------------------------------------------------------------------- encoder


def _encoder_kernel(spec: MaskSpec, backend: str) -> str:
    """How a resolved backend runs a spec: "flex", "split" (two mask-free calls), "whole" (one mask-free call
    over the whole sequence: no queries, full or causal visual rule) or "dense" (the exact fallback)."""
    if backend == "flex":
        return "flex"
    if backend in ("sdpa_split", "flash"):
        if spec.use_queries and spec.split_form() is not None:
            return "split"
        if not spec.use_queries and spec.visual_to_visual in ("full", "causal"):
            return "whole"
    return "dense"


def encoder_mask(spec: MaskSpec, n_visual: int, length: int, backend: str, device: torch.device | str):
    """The spec's mask in the form a resolved `backend` needs for one view length: a FlexAttention block mask,
    a dense (L, L) boolean mask, or None (the mask-free forms). The encoder builds it once per forward."""
    kind = _encoder_kernel(spec, backend)
    if kind == "flex":
        from torch.nn.attention.flex_attention import create_block_mask

        def mask_mod(b, h, q_idx, kv_idx):
            return spec.allowed(q_idx, kv_idx, n_visual)

        return create_block_mask(mask_mod, None, None, length, length, device=device)
    if kind == "dense":
        idx = torch.arange(length, device=device)
        return spec.allowed(idx[:, None], idx[None, :], n_visual)
    return None


def encoder_attention(q, k, v, spec: MaskSpec, n_visual: int, backend: str = "sdpa",
                      scale: float | None = None, mask=None) -> torch.Tensor:
    """Self-attention over one view's `[visual ; queries]` sequence under a reading-order mask spec.

    `mask`: `encoder_mask(...)` for this backend and length, built once by the caller for all layers; when
    None it is built here (a one-off call)."""
    backend = resolve_backend(backend, q, "encoder")
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    kind = _encoder_kernel(spec, backend)
    if mask is None and kind in ("flex", "dense"):
        mask = encoder_mask(spec, n_visual, q.shape[2], backend, q.device)
    if kind == "flex":
        return _flex(q, k, v, mask, scale)
    if kind == "dense":
        return _dense(q, k, v, mask, "eager" if backend == "eager" else "sdpa", scale)
    if kind == "whole":
        causal = spec.visual_to_visual == "causal"
        if backend == "flash":
            return _flash(q, k, v, causal=causal, scale=scale)
        return _sdpa(q, k, v, is_causal=causal, scale=scale)

    visual_rule, query_rule = spec.split_form()
    q_rows = q[:, :, n_visual:]
    if backend == "flash":
        out_v = _flash(q[:, :, :n_visual], k[:, :, :n_visual], v[:, :, :n_visual], causal=visual_rule == "causal",
                       scale=scale)
        out_q = _flash(q_rows, k, v, causal=query_rule == "causal", scale=scale)
        return torch.cat([out_v, out_q], dim=2)
    out_v = _sdpa(q[:, :, :n_visual], k[:, :, :n_visual], v[:, :, :n_visual],
                  is_causal=visual_rule == "causal", scale=scale)
    bias = _lower_right_causal(q_rows.shape[2], q.shape[2], q.device) if query_rule == "causal" else None
    out_q = _sdpa(q_rows, k, v, mask=bias, scale=scale)
    return torch.cat([out_v, out_q], dim=2)


# ----------------------------------------------------------------------------------------- decoder


@dataclass(frozen=True, eq=False)
class DecoderMaskForm:
    """A `DecoderMask` in the form one concrete backend runs it; built once per decoder forward.

    Exactly one of `dense` (eager / sdpa), `block_mask` (flex), `varlen` or `leftpad` (flash) is set, or none:
    sdpa's mask-free causal call, flash's causal=True call."""
    rule: DecoderMask
    backend: str  # "eager", "sdpa", "flex" or "flash"
    dense: torch.Tensor | None = None
    block_mask: object = None
    varlen: VarlenPlan | None = None
    leftpad: torch.Tensor | None = None  # (B,) int32: flash decoding over a left-padded KV cache


def decoder_mask_form(rule: DecoderMask, backend: str, like: torch.Tensor) -> DecoderMaskForm:
    """The form of `rule` for `backend` (`auto` resolved for tensors on `like`'s device and dtype)."""
    backend = resolve_backend(backend, like, "decoder")
    device = like.device
    if backend == "flex":
        return DecoderMaskForm(rule, backend, block_mask=rule.block_mask(device))
    if backend == "flash":
        if rule.plain:
            return DecoderMaskForm(rule, backend)
        if rule.offset and rule.sequence_ids is None and _has_kvcache_leftpad(_flash_module()):
            # Decoding with padded prompts: the cache's kernel skips each row's padding in place; a varlen plan
            # would gather (copy) every real key and value of the cache in every layer for every token.
            return DecoderMaskForm(rule, backend, leftpad=rule.left_padding())
        plan = rule.varlen()
        if plan is not None:
            return DecoderMaskForm(rule, backend, varlen=plan)
        backend = "sdpa"  # flash cannot express this rule exactly; dense SDPA can
    if backend == "sdpa_split":
        backend = "sdpa"  # nothing to split in a causal decoder
    if backend == "sdpa" and rule.plain and (rule.q_len == rule.kv_len or rule.q_len == 1):
        return DecoderMaskForm(rule, backend)  # is_causal, or one new token that sees every key
    return DecoderMaskForm(rule, backend, dense=rule.dense(device))


def decoder_attention(q, k, v, form: DecoderMaskForm, scale: float | None = None) -> torch.Tensor:
    """Decoder self-attention under a prepared `DecoderMaskForm` (causal, aligned bottom-right: a KV cache
    of earlier tokens just lengthens k and v)."""
    if (q.shape[2], k.shape[2]) != (form.rule.q_len, form.rule.kv_len):
        raise ValueError(f"mask is for {form.rule.q_len} queries over {form.rule.kv_len} keys, got "
                         f"{q.shape[2]} over {k.shape[2]}")
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    if form.backend == "flex":
        return _flex(q, k, v, form.block_mask, scale)
    if form.backend == "flash":
        if form.leftpad is not None:
            return _flash_kvcache(q, k, v, form.leftpad, scale)
        if form.varlen is None:
            return _flash(q, k, v, causal=True, scale=scale)
        return _flash_varlen(q, k, v, form.varlen, scale)
    if form.dense is None:
        return _sdpa(q, k, v, is_causal=q.shape[2] == k.shape[2], scale=scale)
    return _dense(q, k, v, form.dense, form.backend, scale)


def static_cache_attention(q, k, v, visible: torch.Tensor, backend: str, scale: float | None = None) -> torch.Tensor:
    """New queries over a whole fixed-size KV cache buffer under a boolean `visible` mask (B, 1, Lq, capacity):
    the static decoding step (ocr2/modeling/static_cache.py). `eager` keeps its reference kernel; every other
    backend runs SDPA with the mask (on CUDA its memory-efficient kernel takes it), which compiles and captures
    alike: flash-attn's and FlexAttention's decoding forms are not used on this path."""
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    return _dense(q, k, v, visible, "eager" if backend == "eager" else "sdpa", scale)


def causal_attention(q, k, v, key_mask: torch.Tensor | None = None, backend: str = "sdpa",
                     scale: float | None = None, sequence_ids: torch.Tensor | None = None) -> torch.Tensor:
    """One-off decoder attention: the rule for these tensors, its form, one call. Layers of a model share
    one form per forward instead (`MoEDecoder`). key_mask (B, Lk) bool; sequence_ids (B, L) packed samples."""
    rule = DecoderMask(q.shape[2], k.shape[2], None if key_mask is None else key_mask.bool(), sequence_ids)
    return decoder_attention(q, k, v, decoder_mask_form(rule, backend, q), scale)

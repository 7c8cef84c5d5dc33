"""DeepSeekMoE feed-forward: softmax router, routed experts (top-k), shared experts, balance loss.

Release semantics (the hub's `modeling_deepseekv2.py` with the checkpoint's config.json: `topk_method` greedy,
`norm_topk_prob` left at its default False): gate logits and softmax in fp32, plain ("greedy") top-k, the top-k
weights NOT renormalised, the weighted expert sum accumulated in fp32 and cast back, shared experts added
unweighted. Dispatch is token-sorted: tokens are sorted by expert id and every active expert runs one
contiguous matmul over its tokens (or one grouped GEMM covers all experts, where torch has one for the device) —
no loop that touches every expert for every token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ocr2.config import DecoderConfig
from ocr2.modeling.fused_linear import DerivedState
from ocr2.modeling.transformer import SwiGLU


class Router(nn.Module):
    def __init__(self, dim: int, n_experts: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_experts, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (T, dim) -> routing probabilities (T, n_experts) in fp32."""
        x = x if x.dtype == torch.float32 else x.float()  # no dispatcher call for an fp32 no-op cast
        w = self.weight if self.weight.dtype == torch.float32 else self.weight.float()
        return F.linear(x, w).softmax(dim=-1)


def _grouped_mm_op():
    """torch's grouped GEMM (one call for every expert's contiguous rows), where this torch has one."""
    return getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


def grouped_mm_supported(x: torch.Tensor, *weights: torch.Tensor) -> bool:
    """Whether `_grouped_mm_op()` can run these operands: CUDA needs sm80+ (and bf16 for the older private op);
    the CPU kernel (torch >= 2.9) needs 16-byte aligned pointers and row strides. Never required: the per-expert
    loop computes the same thing."""
    op = _grouped_mm_op()
    if op is None:
        return False
    if x.device.type == "cuda":
        major_minor = torch.cuda.get_device_capability(x.device)
        if op is getattr(F, "grouped_mm", None):
            return major_minor >= (8, 0)
        return major_minor >= (9, 0) and x.dtype == torch.bfloat16
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16):
        return False
    # Under torch.compile the operands are fake (no data pointer); Inductor's own buffers are 64-byte aligned
    # and the weights are whole parameters, so only the strides are checked there.
    pointers = not torch.compiler.is_compiling()
    return all((not pointers or t.data_ptr() % 16 == 0)
               and all((st * t.element_size()) % 16 == 0 for st in t.stride()[:-1]) for t in (x, *weights))


class RoutedExperts(nn.Module):
    """n SwiGLU experts stored as stacked tensors (E, out, in) so dispatch can slice contiguous weights.

    `grouped`: None picks a grouped GEMM when `grouped_mm_supported` (on CPU only for at least as many rows as
    experts), else the per-expert loop; True / False force one (tests compare both against a dense reference)."""

    def __init__(self, n_experts: int, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Parameter(torch.empty(n_experts, hidden, dim))
        self.up_proj = nn.Parameter(torch.empty(n_experts, hidden, dim))
        self.down_proj = nn.Parameter(torch.empty(n_experts, dim, hidden))
        self.grouped: bool | None = None
        self._views = DerivedState()  # `_expert_views`

    def forward(self, x: torch.Tensor, expert_idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x (T, dim); expert_idx, weights (T, k) -> sum_k weights * expert(x), accumulated in fp32."""
        t, k = expert_idx.shape
        flat = expert_idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        token_of = order // k
        xs = x[token_of]  # (T*k, dim): each token once per chosen expert, grouped by expert
        # Tokens per expert by scatter-add, not bincount: on CUDA bincount reads the input's max back to the host
        # (a device sync) even with minlength, twice per MoE layer per forward.
        counts = torch.zeros(self.gate_proj.shape[0], dtype=torch.long, device=x.device).scatter_add_(
            0, flat, torch.ones_like(flat))
        grouped = self.grouped
        if grouped is None and torch.compiler.is_compiling():
            # A compiled step (the static decoding path) must not read counts back: the loop's `tolist` would
            # split the graph and recompile per routing. One grouped GEMM on CUDA in bf16 (torch 2.13's fake
            # kernel for it, which tracing runs, accepts only bf16 whatever the device), else the gathered form.
            grouped = (x.device.type == "cuda" and x.dtype == torch.bfloat16
                       and grouped_mm_supported(xs, self.gate_proj, self.up_proj, self.down_proj))
            if not grouped:
                return self._gathered(x, expert_idx, weights)
        elif grouped is None:
            # torch's CPU grouped GEMM is a loop over every expert (a host read and a matmul per group: ~2,300
            # ATen calls for one decoded token at 64 experts), so with fewer rows than experts the loop over the
            # active ones is cheaper there; on CUDA the grouped form is one kernel and saves the loop's host sync.
            grouped = (x.device.type != "cpu" or t * k >= self.gate_proj.shape[0]) and grouped_mm_supported(
                xs, self.gate_proj, self.up_proj, self.down_proj)
        ys = self._grouped(xs, counts) if grouped else self._looped(xs, counts)
        if ys.dtype != torch.float32:
            ys = ys.float()
        ys = ys * weights.reshape(-1)[order, None]
        out = torch.zeros(t, x.shape[-1], dtype=torch.float32, device=x.device).index_add_(0, token_of, ys)
        return out if x.dtype == torch.float32 else out.to(x.dtype)

    def _gathered(self, x: torch.Tensor, expert_idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Every (token, expert) pair against its own gathered expert weights, batched: no sort, no host read,
        fixed shapes. Copies k experts' weights per token, so it is only the compiled path's fallback where
        torch has no grouped GEMM for the device; the sum over k is in fp32 like the other forms."""
        t, k = expert_idx.shape
        flat = expert_idx.reshape(-1)
        xs = x.repeat_interleave(k, dim=0, output_size=t * k)[:, :, None]  # (T*k, dim, 1), token-major
        h = F.silu(torch.bmm(self.gate_proj[flat], xs)) * torch.bmm(self.up_proj[flat], xs)
        ys = torch.bmm(self.down_proj[flat], h).view(t, k, -1).float()
        return (ys * weights[..., None]).sum(1).to(x.dtype)

    def _grouped(self, xs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Three grouped GEMMs over all experts at once; offsets stay on the device (no host sync)."""
        op = _grouped_mm_op()
        offs = counts.cumsum(0, dtype=torch.int32)
        gate = op(xs, self.gate_proj.transpose(1, 2), offs=offs)
        up = op(xs, self.up_proj.transpose(1, 2), offs=offs)
        return op(F.silu(gate) * up, self.down_proj.transpose(1, 2), offs=offs)

    def _looped(self, xs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """One contiguous matmul per active expert; experts that got no token are skipped. `torch.mm` on
        transposed per-expert views: a third of the dispatcher calls of `F.linear` on a selected weight (no
        linear -> matmul -> mm chain, no per-call select and transpose), the same product."""
        gate_t, up_t, down_t = self._expert_views()
        active = [(e, c) for e, c in enumerate(counts.tolist()) if c]
        outs = []
        for (e, _), chunk in zip(active, xs.split([c for _, c in active])):  # one split, not a slice each
            h = F.silu(torch.mm(chunk, gate_t[e])) * torch.mm(chunk, up_t[e])
            outs.append(torch.mm(h, down_t[e]))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)

    def _apply(self, fn, recurse=True):
        self._views.value = None  # `.to()` and friends: the kept views are of the old storage (and pin it)
        return super()._apply(fn, recurse)

    def _expert_views(self) -> tuple[tuple[torch.Tensor, ...], ...]:
        """Per expert, (in, out) views of the three stacked weights. Views follow in-place updates of their
        storage, so without autograd they are kept until a weight is replaced (another storage, dtype or
        shape: `model.to`, `p.data = ...`; the kept views hold the old storage, so its address is not reused);
        with autograd they are taken afresh (a view recorded in an earlier graph must not be reused)."""
        weights = (self.gate_proj, self.up_proj, self.down_proj)
        if (torch.is_grad_enabled() and any(w.requires_grad for w in weights)) or any(
                hasattr(w, "ds_id") for w in weights):
            # Autograd, or DeepSpeed ZeRO-3 (kept views would pin each gathered copy in memory): fresh views.
            return tuple(w.transpose(1, 2).unbind(0) for w in weights)
        key = tuple((w.data_ptr(), w.dtype, w.device, w.shape) for w in weights)
        if self._views.value is None or self._views.value[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # normal views: usable outside inference mode
                views = tuple(w.detach().transpose(1, 2).unbind(0) for w in weights)
            self._views.value = (key, views)
        return self._views.value[1]


class MoE(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.gate = Router(cfg.hidden_size, cfg.n_routed_experts)
        self.experts = RoutedExperts(cfg.n_routed_experts, cfg.hidden_size, cfg.moe_intermediate_size)
        self.shared_experts = (SwiGLU(cfg.hidden_size, cfg.moe_intermediate_size * cfg.n_shared_experts)
                               if cfg.n_shared_experts else None)
        self.aux_loss: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        probs = self.gate(flat)
        weights, idx = torch.topk(probs, self.cfg.num_experts_per_tok, dim=-1, sorted=False)
        if self.cfg.norm_topk_prob:
            weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-20)
        if self.cfg.routed_scaling_factor != 1.0:  # the release's 1.0 would cost a kernel for an exact no-op
            weights = weights * self.cfg.routed_scaling_factor
        out = self.experts(flat, idx, weights)
        if self.shared_experts is not None:
            out = out + self.shared_experts(flat)  # on the (T, dim) rows: a 2-D matmul skips 3-D reshapes
        out = out.reshape(shape)
        self.aux_loss = (self.balance_loss(probs.reshape(*shape[:-1], -1), idx.reshape(*shape[:-1], -1))
                         if self.training and self.cfg.aux_loss_alpha > 0 else None)
        return out

    def balance_loss(self, probs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """DeepSeek-V2 sequence-level balance loss: alpha * sum_i f_i * P_i, averaged over sequences, where
        f_i = E / (k T) * (tokens of the sequence routed to expert i) and P_i the mean router probability."""
        if probs.dim() == 2:
            probs, idx = probs[None], idx[None]
        b, t, e = probs.shape
        k = idx.shape[-1]
        counts = torch.zeros(b, e, device=probs.device).scatter_add_(
            1, idx.reshape(b, -1), torch.ones(b, t * k, device=probs.device))
        f = counts * e / (k * t)
        return self.cfg.aux_loss_alpha * (f * probs.mean(dim=1)).sum(dim=1).mean()

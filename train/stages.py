"""The DeepSeek-OCR 2 paper's three training stages (§4.2) as data: which modules are frozen, and a check that
they stayed put."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

TOP_LEVEL = ("vision_tokenizer", "encoder", "projector", "view_separator", "decoder", "lm_head")


def apply_freezing(model: nn.Module, frozen: list[str]) -> list[str]:
    """Freeze the named top-level modules; returns the names of the frozen parameters."""
    unknown = set(frozen) - set(TOP_LEVEL)
    if unknown:
        raise ValueError(f"stage.frozen names unknown modules {sorted(unknown)}; choose from {TOP_LEVEL}")
    names = []
    for name, p in model.named_parameters():
        if name.split(".")[0] in frozen:
            p.requires_grad_(False)
            names.append(name)
    return names


def param_groups(model: nn.Module, lr_mult: dict[str, float] | None) -> list[dict]:
    """Trainable parameters grouped by learning-rate multiplier. `lr_mult` maps a parameter-name prefix
    ("vision_tokenizer", "encoder.flow_queries") to a factor on the stage LR; the longest matching prefix wins.

    Why: a from-scratch tokenizer (or fresh flow queries) under the LR that suits the decoder can collapse to a
    page-independent output within a few Adam steps; a per-module factor keeps one run's schedule for all."""
    def under(name: str, prefix: str) -> bool:  # prefixes end at a name boundary: "vision" is not "vision_tokenizer"
        return name == prefix or name.startswith(prefix + ".")

    lr_mult = dict(lr_mult or {})
    names = [n for n, _ in model.named_parameters()]
    for prefix, factor in lr_mult.items():
        if not any(under(n, prefix) for n in names):
            raise ValueError(f"stage.lr_mult: no parameter is named {prefix!r} or starts with '{prefix}.'")
        if not float(factor) >= 0:
            raise ValueError(f"stage.lr_mult.{prefix} must be >= 0, got {factor}")
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        hits = [k for k in lr_mult if under(name, k)]
        factor = float(lr_mult[max(hits, key=len)]) if hits else 1.0
        groups.setdefault(factor, []).append(p)
    return [{"params": ps, "lr_mult": factor} for factor, ps in sorted(groups.items(), reverse=True)]


def _gathered(params: list[nn.Parameter]):
    """Full values of ZeRO-3 partitioned parameters (a no-op context for ordinary ones)."""
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        return deepspeed.zero.GatheredParameters(params)
    return contextlib.nullcontext()


def _fingerprint(t: torch.Tensor) -> torch.Tensor:
    """Sum and sum of squares in float64: any optimizer update of a frozen tensor changes them, and they cost two
    numbers per tensor instead of a copy of every frozen weight (a LoRA run freezes the whole 3.4B-parameter base)."""
    t = t.detach().double()
    return torch.stack([t.sum(), (t * t).sum()]).cpu()


def snapshot(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    chosen = [params[n] for n in names]
    with _gathered(chosen):
        return {n: _fingerprint(p) for n, p in zip(names, chosen)}


def changed(model: nn.Module, before: dict[str, torch.Tensor]) -> list[str]:
    """Frozen parameters whose values differ from the snapshot (should be none)."""
    params = dict(model.named_parameters())
    chosen = [params[n] for n in before]
    with _gathered(chosen):
        return [n for n, p in zip(before, chosen) if not torch.equal(_fingerprint(p), before[n])]

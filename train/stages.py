"""The paper's three training stages as data: which modules are frozen (§4.2), and a check that they stayed put."""

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


def _gathered(params: list[nn.Parameter]):
    """Full values of ZeRO-3 partitioned parameters (a no-op context for ordinary ones)."""
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        return deepspeed.zero.GatheredParameters(params)
    return contextlib.nullcontext()


def snapshot(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    chosen = [params[n] for n in names]
    with _gathered(chosen):
        return {n: p.detach().clone() for n, p in zip(names, chosen)}


def changed(model: nn.Module, before: dict[str, torch.Tensor]) -> list[str]:
    """Frozen parameters whose values differ from the snapshot (should be none)."""
    params = dict(model.named_parameters())
    chosen = [params[n] for n in before]
    with _gathered(chosen):
        return [n for n, p in zip(before, chosen) if not torch.equal(p.detach(), before[n])]

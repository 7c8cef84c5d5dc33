"""AdamW that can skip one step exactly (non-finite loss): parameters, moments and step counts stay untouched.

DeepSpeed (ZeRO 0-3) calls the wrapped optimizer's `step()` on every accumulation boundary; setting `skip_next`
turns that one call into a no-op, which skips the update on every ZeRO stage alike.
"""

from __future__ import annotations

import torch


class SkippableAdamW(torch.optim.AdamW):
    skip_next: bool = False

    @torch.no_grad()
    def step(self, closure=None):
        if self.skip_next:
            self.skip_next = False
            return None
        return super().step(closure)


OPTIMIZERS = ("torch_adamw", "fused_adamw")


def fused_adamw(name: str) -> bool:
    """`trainer.optimizer`: torch_adamw (for-each kernels; no compile step on CPU) or fused_adamw (torch's fused
    AdamW kernel: one launch per parameter group on CUDA, what GPU runs want; DeepSpeed's own FusedAdam would
    JIT-compile an extension first)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"trainer.optimizer={name!r}: choose from {OPTIMIZERS}")
    return name == "fused_adamw"

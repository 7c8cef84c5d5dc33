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

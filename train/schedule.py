"""Learning rate: linear warmup then cosine decay from `lr` to `min_lr` over the run (paper §4.2: cosine)."""

from __future__ import annotations

import math


def cosine_lr(step: int, max_steps: int, lr: float, min_lr: float, warmup_steps: int = 0) -> float:
    if warmup_steps and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(1, max_steps - warmup_steps - 1)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))

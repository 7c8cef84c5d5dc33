"""Next-token cross-entropy computed only where there are labels, in chunks, without keeping logits.

The head's fp32 logits over every position (image placeholders and prompt included) cost ~1.5 MiB per decoder
token at the official vocabulary and, with log-softmax's saved output, stayed alive through backward: 5.9 GiB per
4,096-token micro-batch. Here the label positions are selected before the head, and each chunk of them runs head
+ cross-entropy under activation checkpointing: forward keeps only the chunk's hidden states, backward recomputes
one chunk's logits at a time. The value is the same mean as `F.cross_entropy(ignore_index=IGNORE_INDEX)` over
the shifted logits (a sum per chunk, divided by the label count).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ocr2.tokens import IGNORE_INDEX

# Label positions per chunk: one chunk's fp32 logits at the official vocabulary (129,280) is ~0.5 GiB.
CHUNK_TOKENS = 1024


def _chunk_loss_sum(head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")


def label_loss(head: nn.Module, hidden: torch.Tensor, labels: torch.Tensor,
               chunk_tokens: int = CHUNK_TOKENS) -> torch.Tensor:
    """Mean next-token cross-entropy: hidden (B, L, h) predicts labels[:, 1:] (B, L) where != IGNORE_INDEX.

    NaN when no position is labelled (like the mean over an empty set)."""
    targets = labels[:, 1:].to(hidden.device)
    # The loss's one host sync: N is data-dependent. (Two boolean-mask indexings would be two.)
    rows, cols = (targets != IGNORE_INDEX).nonzero(as_tuple=True)
    selected = hidden[rows, cols]  # (N, h): position l predicts label l + 1
    targets = targets[rows, cols]
    n = targets.shape[0]
    if n == 0:
        return _chunk_loss_sum(head, selected, targets) / 0.0
    total = None
    # A frozen head (LoRA, or a stage that freezes lm_head) is not recomputed: under ZeRO-3 its released weight is
    # not gathered again for a recompute (it has no gradient hook), so each chunk keeps its logits instead; the
    # saving over the old head (labelled positions only, not every position) still holds.
    recompute = torch.is_grad_enabled() and any(p.requires_grad for p in head.parameters())
    for start in range(0, n, chunk_tokens):
        h, t = selected[start:start + chunk_tokens], targets[start:start + chunk_tokens]
        part = (checkpoint(_chunk_loss_sum, head, h, t, use_reentrant=False) if recompute
                else _chunk_loss_sum(head, h, t))
        total = part if total is None else total + part
    return total / n

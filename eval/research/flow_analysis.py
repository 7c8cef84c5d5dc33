"""Flow analysis: which visual tokens each causal-flow query attends to, layer by layer (the "reading path").

The paper's claim is that the flow queries re-order the page into a 1-D reading sequence. For one view this
returns, per encoder layer, the attention of every query over the visual tokens (averaged over heads), computed
with plain eager attention (softmax(q·kᵀ/√d)) under the model's own mask spec.
"""

from __future__ import annotations

import math

import torch

from ocr2.modeling.model import OCR2Model


@torch.no_grad()
def flow_attention(model: OCR2Model, views: torch.Tensor) -> torch.Tensor:
    """views (B, 3, s, s) -> (layers, B, n_queries, n_visual) attention weights of queries on visual tokens."""
    enc = model.encoder
    if not enc.spec.use_queries:
        raise ValueError(f"mask {enc.spec.name!r} has no flow queries to analyse")
    records: list[torch.Tensor] = []

    def attend(q, k, v, n_visual: int):
        n_rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(n_rep, 1), v.repeat_interleave(n_rep, 1)
        idx = torch.arange(q.shape[2], device=q.device)
        allowed = enc.spec.allowed(idx[:, None], idx[None, :], n_visual)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
        records.append(probs[:, :, n_visual:, :n_visual].mean(1).float().cpu())
        return probs @ v

    enc(model.vision_tokenizer(views), view_size=views.shape[-1], attend=attend)
    return torch.stack(records)


def reading_path(attention: torch.Tensor) -> torch.Tensor:
    """(..., n_queries, n_visual) -> the visual token each query attends to most, in query order."""
    return attention.argmax(-1)

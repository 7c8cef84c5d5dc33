"""How much of the vision path's output depends on the image: a gauge for visual collapse.

Trained from scratch with AdamW, the vision tokenizer of a tiny OCR-2 can learn, within ~100 steps, to emit a large
image-independent constant: while the decoder cannot yet use the image, the image only adds noise to its
predictions, and drowning that noise under a constant is the quickest way to lower the loss. After that the
decoder input is the same for every page, no gradient reaches the glyphs, and the model never learns to read
(docs/demo.md measures this). Loss curves do not show it; this figure does.

For a stage output t of shape (N images, T tokens, C) the variation is

    sqrt(mean over T, C of the variance across the N images) / rms(t)

the share of the signal that changes from page to page: ~0.2 at the tokenizer of a fresh tiny model on synthetic
pages, ~0.01 or less after a collapse, 0 for identical images.
"""

from __future__ import annotations

import torch

from ocr2.modeling.model import OCR2Model

STAGES = ("tokenizer", "encoder", "projector")


def across_image_share(t: torch.Tensor) -> float:
    """(N, ...) -> std across the first axis relative to the overall rms (0 when all N entries are equal)."""
    if t.shape[0] < 2:
        raise ValueError(f"variation across images needs at least 2 images, got {t.shape[0]}")
    t = t.flatten(1).double()
    rms = t.pow(2).mean().sqrt()
    if rms == 0:
        return 0.0
    return float((t - t.mean(0, keepdim=True)).pow(2).mean().sqrt() / rms)


@torch.no_grad()
def visual_variation(model: OCR2Model, views: torch.Tensor) -> dict[str, float]:
    """views (N >= 2, 3, s, s), one size -> {stage: across-image share} after the vision tokenizer, the
    encoder (the tokens that reach the decoder: flow queries, or visual tokens for `raster`) and the projector."""
    was_training = model.training
    model.eval()
    try:
        visual = model.vision_tokenizer(views)
        encoded = model.encoder(visual, view_size=views.shape[-1])
        projected = model.projector(encoded)
    finally:
        model.train(was_training)
    return {name: across_image_share(t) for name, t in zip(STAGES, (visual, encoded, projected))}

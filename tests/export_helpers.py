"""Tiny random models and inputs for the export tests (tests/test_export_layouts.py, tests/test_export_cli.py)."""

from __future__ import annotations

import torch

from ocr2 import OCR2Config, OCR2Model


def random_tiny(seed: int = 0, **overrides) -> OCR2Model:
    """The tiny preset with every parameter random (zero-initialised tables would hide mapping mistakes)."""
    cfg = OCR2Config.from_preset("tiny", attn_implementation="eager", **overrides)
    model = OCR2Model(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def batch_with_crops(cfg: OCR2Config):
    """Two pages: no crops, and three 768² crops; ids = BOS + that page's placeholders + text (right-aligned)."""
    g = torch.Generator().manual_seed(1)
    views, crops = torch.rand(2, 3, 1024, 1024, generator=g) * 2 - 1, torch.rand(3, 3, 768, 768, generator=g) * 2 - 1
    n = [cfg.image_token_count(0), cfg.image_token_count(3)]
    length = max(n) + 6
    ids = torch.tensor([[cfg.bos_token_id] + [cfg.image_token_id] * k + [20 + i % 200 for i in range(length - k - 1)]
                        for k in n])
    return ids, views, crops, [0, 3]

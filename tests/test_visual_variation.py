"""eval.research.visual_variation: the share of the vision path's output that changes from page to page."""

from __future__ import annotations

import pytest
import torch

from data_helpers import page_image
from ocr2 import OCR2Config, OCR2Model
from ocr2.processing.image import global_view, to_tensor
from eval.research.visual_variation import across_image_share, visual_variation


def _model() -> OCR2Model:
    torch.manual_seed(0)
    cfg = OCR2Config.from_preset("tiny")
    cfg.global_view_size, cfg.encoder.query_view_sizes = 256, (256,)
    return OCR2Model(cfg)


def _views(images) -> torch.Tensor:
    return torch.stack([to_tensor(global_view(im, 256)) for im in images])


def test_the_share_is_the_relative_spread_across_images():
    torch.manual_seed(0)
    constant = torch.randn(1, 16, 64)
    t = constant + 0.01 * torch.randn(32, 16, 64)  # a collapsed path: a big constant, a faint page signal
    assert across_image_share(t) == pytest.approx(0.01, rel=0.1)


def test_identical_pages_vary_by_nothing():
    image = page_image(0, (256, 256))
    shares = visual_variation(_model(), _views([image, image]))
    assert all(v == pytest.approx(0.0, abs=1e-6) for v in shares.values())


def test_different_pages_vary_at_every_stage_of_a_fresh_model():
    shares = visual_variation(_model(), _views([page_image(i, (256, 256)) for i in range(4)]))
    assert set(shares) == {"tokenizer", "encoder", "projector"} and all(v > 1e-4 for v in shares.values())


def test_one_image_is_an_error():
    with pytest.raises(ValueError, match="at least 2 images"):
        across_image_share(torch.zeros(1, 4))

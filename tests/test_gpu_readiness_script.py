"""The prepared GPU check imports and, on a machine without CUDA, says so and stops (it never needs a GPU to load)."""

from __future__ import annotations

import torch

from eval.bench import gpu_readiness


def test_without_cuda_it_says_so(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_readiness.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().out


def test_its_batch_matches_the_official_image_token_count():
    from ocr2 import OCR2Config

    cfg = OCR2Config.from_preset("official")
    assert cfg.image_token_count(6) == 144 * 6 + 256 + 1

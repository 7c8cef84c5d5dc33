"""eval.research.vision_reliance: answer loss with the page vs. a blank page, the check that a model reads."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from data_helpers import page_image
from eval.research.vision_reliance import vision_reliance
from ocr2 import OCR2Config, OCR2Model
from ocr2.processing.text import ByteTokenizer

PAGES = [SimpleNamespace(stem=f"p{i}", image=page_image(i, (256, 256)), markdown=f"Text of page {i}.")
         for i in range(3)]


def _model() -> OCR2Model:
    torch.manual_seed(0)
    return OCR2Model(OCR2Config.from_preset("tiny"))


def test_a_model_whose_image_path_is_cut_gains_nothing_from_the_page():
    model = _model()
    with torch.no_grad():  # a zero projector: every page, blank or not, becomes the same embeddings
        for p in model.projector.parameters():
            p.zero_()
    r = vision_reliance(model, PAGES, ByteTokenizer(), batch_size=2)
    assert r["vision_gain"] == pytest.approx(0.0, abs=1e-6)


def test_a_cut_image_path_shows_no_page_to_page_variation():
    model = _model()
    with torch.no_grad():
        for p in model.projector.parameters():
            p.zero_()
    assert vision_reliance(model, PAGES, ByteTokenizer(), batch_size=2)["visual_variation"] == 0.0
    assert vision_reliance(_model(), PAGES, ByteTokenizer(), batch_size=2)["visual_variation"] > 1e-5


def test_a_fresh_model_sees_a_difference_between_page_and_blank():
    r = vision_reliance(_model(), PAGES, ByteTokenizer(), batch_size=2)
    assert r["pages"] == 3 and torch.isfinite(torch.tensor(r["page_loss"]))
    assert r["vision_gain"] != 0.0  # the page reaches the loss at all


def test_batch_size_does_not_change_the_figures():
    model, tok = _model(), ByteTokenizer()
    a, b = vision_reliance(model, PAGES, tok, batch_size=1), vision_reliance(model, PAGES, tok, batch_size=3)
    assert a["page_loss"] == pytest.approx(b["page_loss"], rel=1e-5)


def test_pages_without_text_are_an_error():
    with pytest.raises(ValueError, match="at least one page with ground-truth text"):
        vision_reliance(_model(), [SimpleNamespace(stem="e", image=PAGES[0].image, markdown=" ")], ByteTokenizer())


def test_command_line_reports_the_three_figures(tmp_path, capsys):
    import json

    from data_helpers import write_pages
    from eval.research.vision_reliance import main
    from ocr2.pipeline import save_with_tokenizer

    save_with_tokenizer(_model(), ByteTokenizer(), tmp_path / "model")
    data = write_pages(tmp_path / "data", 2, split="validation")
    main([str(tmp_path / "model"), str(data), "--pages", "2"])
    report = json.loads(capsys.readouterr().out)
    assert report["pages"] == 2 and set(report) >= {"page_loss", "blank_loss", "vision_gain", "visual_variation"}

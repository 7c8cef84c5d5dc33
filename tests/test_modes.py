"""Resolution modes (ocr2/modes.py): v1's token budgets, v1's preprocessing, query tables, a forward per mode."""

import dataclasses

import pytest
import torch
from PIL import Image

from ocr2 import OCR2Config, OCR2Model
from ocr2.modes import (
    MODES, ResolutionMode, add_query_tables, apply_mode, config_for_modes, get_mode, views_for,
)
from ocr2.processing.image import choose_grid, preprocess
from ocr2.processing.text import PROMPT_FREE_OCR, ByteTokenizer, encode_prompt

PAD = 127 / 255 * 2 - 1  # the grey pad colour after normalisation


@pytest.mark.parametrize("name,tokens", [("tiny", 64), ("small", 100), ("base", 256), ("large", 400)])
def test_single_view_modes_have_v1_token_counts(name, tokens):
    for size in [(1000, 700), (300, 900), 512]:
        assert MODES[name].token_count(size) == tokens
        assert MODES[name].placeholder_count(size) == tokens + 1  # + the view separator in our layout


def test_gundam_is_n_tiles_of_100_plus_256():
    size = (1600, 1000)
    cols, rows = choose_grid(*size, crop_size=640)
    n = cols * rows
    assert n >= 2
    assert MODES["gundam"].num_crops(size) == n
    assert MODES["gundam"].token_count(size) == n * 100 + 256
    assert MODES["gundam"].placeholder_count(size) == n * 100 + 256 + 1


def test_gundam_without_tiles_when_both_sides_fit_640():
    assert MODES["gundam"].num_crops((640, 600)) == 0
    assert MODES["gundam"].token_count((640, 600)) == 256


@pytest.mark.parametrize("name", sorted(MODES))
def test_placeholder_count_equals_config_image_token_count(name):
    mode, size = MODES[name], (1500, 1100)
    cfg = apply_mode(OCR2Config(), mode)
    assert mode.placeholder_count(size, cfg) == cfg.image_token_count(mode.num_crops(size), mode.global_size)


def test_ocr2_mode_is_the_default_geometry():
    cfg, size = OCR2Config(), (1500, 1100)
    n = choose_grid(*size)[0] * choose_grid(*size)[1]
    assert MODES["ocr2"].placeholder_count(size, cfg) == cfg.image_token_count(n) == n * 144 + 256 + 1


def test_apply_mode_adds_query_tables_and_sets_view_sizes():
    base = OCR2Config.from_preset("tiny")
    small = apply_mode(base, "small")
    assert set(small.encoder.query_view_sizes) == {640, 768, 1024}
    assert small.global_view_size == 640
    gundam = apply_mode(base, "gundam")
    assert set(gundam.encoder.query_view_sizes) == {640, 768, 1024}
    assert (gundam.global_view_size, gundam.crop_size) == (1024, 640)
    assert base.encoder.query_view_sizes == (768, 1024)  # the input config is not modified


def test_config_for_modes_covers_every_size():
    cfg = config_for_modes(OCR2Config.from_preset("tiny"), MODES)
    assert cfg.encoder.query_view_sizes == (512, 640, 768, 1024, 1280)


def test_view_size_must_be_a_multiple_of_the_token_stride():
    with pytest.raises(ValueError, match="multiple"):
        apply_mode(OCR2Config(), ResolutionMode("odd", 500))


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown resolution mode"):
        get_mode("huge")


def test_tiny_and_small_squash_without_padding():
    page = Image.new("RGB", (400, 100), "white")  # very wide: padding would add grey bands
    for name, side in [("tiny", 512), ("small", 640)]:
        v = views_for(page, name)
        assert v.global_view.shape == (3, side, side)
        assert v.num_crops == 0 and v.crops.shape == (0, 3, side, side)
        assert torch.all(v.global_view == 1.0)  # all white: squashed, not padded


def test_base_and_large_pad_keeping_aspect():
    page = Image.new("RGB", (400, 100), "white")
    for name, side in [("base", 1024), ("large", 1280)]:
        g = views_for(page, name).global_view
        assert g.shape == (3, side, side)
        assert torch.allclose(g[:, 0], torch.full_like(g[:, 0], PAD))  # grey band on top
        assert torch.all(g[:, side // 2] == 1.0)  # page content in the middle row


def test_gundam_views_are_preprocess_with_640_tiles():
    page = Image.new("RGB", (1300, 900), "white")
    v, ref = views_for(page, "gundam"), preprocess(page, 1024, 640, crop_mode=True)
    assert v.num_crops == ref.num_crops == MODES["gundam"].num_crops(page.size)
    assert torch.equal(v.global_view, ref.global_view) and torch.equal(v.crops, ref.crops)
    assert v.crops.shape[-1] == 640


@pytest.mark.parametrize("name", ["tiny", "small", "gundam"])
def test_tiny_model_runs_a_forward_on_mode_views(name):
    torch.manual_seed(0)
    mode = MODES[name]
    cfg = apply_mode(OCR2Config.from_preset("tiny"), mode)
    model = OCR2Model(cfg).eval()
    page = Image.new("RGB", (1300, 650), "white")  # Gundam: a 2 x 1 grid, 2 tiles (kept small for speed)
    v = views_for(page, mode)
    assert v.num_crops == (2 if mode.crop_mode else 0)
    n = mode.placeholder_count(page.size, cfg)
    ids = torch.tensor([encode_prompt(ByteTokenizer(), PROMPT_FREE_OCR, [n])])
    with torch.no_grad():
        out = model(ids, v.global_view[None], v.crops if v.num_crops else None, [v.num_crops])
    assert out.logits.shape == (1, ids.shape[1], cfg.decoder.vocab_size)
    assert torch.isfinite(out.logits).all()


def test_add_query_tables_grows_a_built_model():
    torch.manual_seed(0)
    model = OCR2Model(OCR2Config.from_preset("tiny")).eval()
    before = {k: p.detach().clone() for k, p in model.encoder.flow_queries.items()}
    assert add_query_tables(model, [512, 640, 1024]) == [512, 640]
    assert model.encoder.flow_queries["512"].shape == (64, 64)
    assert model.encoder.flow_queries["640"].shape == (100, 64)
    assert model.config.encoder.query_view_sizes == (512, 640, 768, 1024)
    for k, p in before.items():
        assert torch.equal(model.encoder.flow_queries[k], p)
    v = views_for(Image.new("RGB", (300, 200), "white"), "tiny")
    with torch.no_grad():
        assert model.image_embeddings(v.global_view[None], None, [0]).shape == (65, 64)


def test_modes_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODES["tiny"].global_size = 640

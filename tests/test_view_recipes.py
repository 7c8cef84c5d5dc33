"""View recipes (ocr2/processing/views.py): v1's token budgets and preprocessing, the release's recipes, query
tables (ocr2/query_tables.py), a forward per recipe."""

import dataclasses

import pytest
import torch
from PIL import Image

from ocr2 import OCR2Config, OCR2Model
from ocr2.processing.image import choose_grid, crops, global_view, to_tensor
from ocr2.processing.reading import PROMPT_FREE_OCR
from ocr2.processing.text import ByteTokenizer, encode_prompt
from ocr2.processing.views import RECIPES, ViewRecipe, get_recipe, page_views
from ocr2.query_tables import add_query_tables, require_query_tables, with_query_tables

PAD = 127 / 255 * 2 - 1  # the grey pad colour after normalisation
OFFICIAL = OCR2Config()


@pytest.mark.parametrize("name,tokens", [("tiny", 64), ("small", 100), ("base", 256), ("large", 400)])
def test_single_view_modes_have_v1_token_counts(name, tokens):
    for size in [(1000, 700), (300, 900), (512, 512)]:
        assert get_recipe(name).vision_tokens(size, OFFICIAL) == tokens
        assert get_recipe(name).image_tokens(size, OFFICIAL) == tokens + 1  # + the view separator in our layout


def test_gundam_is_n_tiles_of_100_plus_256():
    size = (1600, 1000)
    cols, rows = choose_grid(*size, crop_size=640)
    n = cols * rows
    assert n >= 2
    gundam = get_recipe("gundam")
    assert gundam.num_crops(size) == n
    assert gundam.vision_tokens(size, OFFICIAL) == n * 100 + 256
    assert gundam.image_tokens(size, OFFICIAL) == n * 100 + 256 + 1


def test_gundam_without_tiles_when_both_sides_fit_640():
    assert get_recipe("gundam").num_crops((640, 600)) == 0
    assert get_recipe("gundam").vision_tokens((640, 600), OFFICIAL) == 256


def test_multi_crop_is_the_release_geometry():
    size = (1500, 1100)
    n = choose_grid(*size)[0] * choose_grid(*size)[1]
    assert get_recipe("multi_crop").image_tokens(size, OFFICIAL) == OFFICIAL.image_token_count(n) == n * 144 + 256 + 1
    assert get_recipe("ocr2") == get_recipe("multi_crop")


def test_model_relative_recipes_take_the_model_sizes():
    micro = dataclasses.replace(OCR2Config.from_preset("tiny"), global_view_size=256, crop_size=192)
    assert get_recipe("multi_crop", micro).view_sizes == (256, 192)
    assert get_recipe("single", micro).view_sizes == (256,)
    assert get_recipe("single:128", micro).view_sizes == (128,)
    assert get_recipe("tiny", micro).view_sizes == (512,)  # v1 modes keep their own sizes


def test_with_query_tables_adds_tables_only():
    base = OCR2Config.from_preset("tiny")
    small = with_query_tables(base, ["small"])
    assert set(small.encoder.query_view_sizes) == {640, 768, 1024}
    assert (small.global_view_size, small.crop_size) == (base.global_view_size, base.crop_size)
    gundam = with_query_tables(base, ["gundam"])
    assert set(gundam.encoder.query_view_sizes) == {640, 768, 1024}
    assert base.encoder.query_view_sizes == (768, 1024)  # the input config is not modified


def test_with_query_tables_covers_every_v1_size():
    cfg = with_query_tables(OCR2Config.from_preset("tiny"), RECIPES)
    assert cfg.encoder.query_view_sizes == (512, 640, 768, 1024, 1280)


def test_a_model_without_the_tables_is_refused():
    with pytest.raises(ValueError, match="flow-query tables for view sizes \\[640\\]"):
        require_query_tables(OCR2Config.from_preset("tiny"), "small")


def test_view_size_must_be_a_multiple_of_the_token_stride():
    with pytest.raises(ValueError, match="multiple"):
        with_query_tables(OCR2Config(), [ViewRecipe("odd", 500)])


def test_unknown_recipe_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown view recipe 'huge'.*multi_crop"):
        get_recipe("huge")
    with pytest.raises(ValueError, match="positive pixel size"):
        get_recipe("single:big")


def test_tiny_and_small_squash_without_padding():
    page = Image.new("RGB", (400, 100), "white")  # very wide: padding would add grey bands
    for name, side in [("tiny", 512), ("small", 640)]:
        v = page_views(page, name)
        assert v.global_view.shape == (3, side, side)
        assert v.num_crops == 0 and v.crops.shape == (0, 3, side, side)
        assert torch.all(v.global_view == 1.0)  # all white: squashed, not padded


def test_base_and_large_pad_keeping_aspect():
    page = Image.new("RGB", (400, 100), "white")
    for name, side in [("base", 1024), ("large", 1280)]:
        g = page_views(page, name).global_view
        assert g.shape == (3, side, side)
        assert torch.allclose(g[:, 0], torch.full_like(g[:, 0], PAD))  # grey band on top
        assert torch.all(g[:, side // 2] == 1.0)  # page content in the middle row


def test_single_view_is_the_padded_global_view_alone():
    page = Image.new("RGB", (400, 100), "white")
    v = page_views(page, "single:256")
    assert torch.equal(v.global_view, to_tensor(global_view(page, 256))) and v.num_crops == 0


def test_gundam_views_are_the_release_procedure_with_640_tiles():
    page = Image.new("RGB", (1300, 900), "white")
    v = page_views(page, "gundam")
    grid = choose_grid(*page.size, crop_size=640)
    tiles = crops(page, grid, 640)
    assert v.num_crops == len(tiles) == get_recipe("gundam").num_crops(page.size)
    assert torch.equal(v.global_view, to_tensor(global_view(page, 1024)))
    assert torch.equal(v.crops, torch.stack([to_tensor(t) for t in tiles]))
    assert v.crops.shape[-1] == 640


@pytest.mark.parametrize("name", ["tiny", "small", "gundam"])
def test_tiny_model_runs_a_forward_on_recipe_views(name):
    torch.manual_seed(0)
    recipe = get_recipe(name)
    cfg = with_query_tables(OCR2Config.from_preset("tiny"), [recipe])
    model = OCR2Model(cfg).eval()
    page = Image.new("RGB", (1300, 650), "white")  # Gundam: a 2 x 1 grid, 2 tiles (kept small for speed)
    v = page_views(page, recipe)
    assert v.num_crops == (2 if recipe.crop_size else 0)
    n = recipe.image_tokens(page.size, cfg)
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
    v = page_views(Image.new("RGB", (300, 200), "white"), "tiny")
    with torch.no_grad():
        assert model.image_embeddings(v.global_view[None], None, [0]).shape == (65, 64)


def test_recipes_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECIPES["tiny"].global_size = 640

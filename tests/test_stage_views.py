"""`stage.views`: the view recipes a stage trains on, chosen with one override, end to end (Hydra -> model config
-> training views -> checkpoint -> reading with the same views). DeepSeek-OCR v1's token budgets are recipes too:
`stage.views=[tiny]`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from data_helpers import page_image, page_row, write_pages, write_split
from ocr2 import OCR2Config, OCR2Model
from ocr2.data.collate import collate
from ocr2.data.examples import ExampleEncoder
from ocr2.pipeline import OCRPipeline
from ocr2.processing.text import ByteTokenizer
from ocr2.processing.views import RECIPES, get_recipe
from ocr2.query_tables import with_query_tables
from train.builders import build_model_config, build_reading, build_run_model_config
from train.data import data_config
from train_harness import ROOT, run_train

CONFIGS = ROOT / "configs"
TOK = ByteTokenizer()


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _micro() -> OCR2Config:
    return build_model_config(_compose(["model=micro"]).model)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_stage_views_give_the_model_the_query_tables_it_needs(name):
    mc = build_run_model_config(_compose(["model=micro", f"stage.views=[{name}]"]))
    assert set(get_recipe(name).view_sizes) <= set(mc.encoder.query_view_sizes)
    assert (mc.global_view_size, mc.crop_size) == (_micro().global_view_size, _micro().crop_size)


def test_the_stage_default_leaves_the_model_group_alone():
    assert build_run_model_config(_compose(["model=micro"])) == _micro()


def test_stage1_cycles_two_single_views_and_stage2_reads_multi_crop(tmp_path):
    cfg = _compose(["model=micro", "stage=stage1_encoder", f"data.path={tmp_path}"])
    assert data_config(cfg, build_run_model_config(cfg)).views == ("single:768", "single:1024")
    assert build_reading(cfg, build_run_model_config(cfg)).views == "single:1024"  # read at the larger size
    cfg = _compose(["model=micro", "stage=stage2_query", f"data.path={tmp_path}"])
    assert data_config(cfg, build_run_model_config(cfg)).views == ("multi_crop",)


def test_empty_stage_views_are_an_error(tmp_path):
    cfg = _compose(["model=micro", "stage.views=[]", f"data.path={tmp_path}"])
    with pytest.raises(ValueError, match="stage.views is empty"):
        build_run_model_config(cfg)


@pytest.mark.parametrize("name,size", [("tiny", (96, 128)), ("gundam", (1600, 1000))])
def test_example_under_a_recipe_fits_the_model(name, size):
    # The example's <image> count must equal what the model's encoder emits for those views, or the loss fails.
    cfg = with_query_tables(_micro(), [name])
    model = OCR2Model(cfg)
    ex = ExampleEncoder(TOK, cfg, name)(page_row(0, image=page_image(0, size), size=size))
    assert ex.input_ids.count(cfg.image_token_id) == get_recipe(name).image_tokens(size, cfg)
    batch = collate([ex], TOK.pad_id)
    with torch.no_grad():
        out = model(**batch)
    assert torch.isfinite(out.loss)


def test_small_pages_are_squashed_not_padded():
    # v1 Tiny/Small resize straight to the square (no grey bars); single:S pads.
    cfg = with_query_tables(_micro(), ["tiny"])
    black = Image.new("RGB", (100, 300), "black")
    ex = ExampleEncoder(TOK, cfg, "tiny")(page_row(0, markdown="x", image=black, size=(100, 300)))
    assert ex.global_view.shape == (3, 512, 512)
    assert torch.allclose(ex.global_view, torch.full_like(ex.global_view, ex.global_view.min().item()))


def test_a_model_without_the_recipe_tables_is_refused():
    model = OCR2Model(_micro())
    with pytest.raises(ValueError, match="flow-query tables"):
        OCRPipeline(model, TOK, views="tiny")
    with pytest.raises(ValueError, match="flow-query tables"):
        ExampleEncoder(TOK, model.config, "tiny")


def test_run_trained_on_a_recipe_is_read_with_it(tmp_path):
    from eval.report import evaluate_run

    data = write_pages(tmp_path / "pages", 8)
    write_split(data, "validation", [page_row(i, prefix="v") for i in range(2)])
    run = tmp_path / "run"
    run_train(data, run, ["stage.views=[tiny]", "max_steps=2", "checkpoint.every=2"])
    result = evaluate_run(run, limit=2, max_new_tokens=4)
    assert result["protocol"]["views"] == "tiny"
    saved = json.loads(next(Path(run).rglob("config.json")).read_text())
    assert 512 in saved["encoder"]["query_view_sizes"]
    reading = json.loads(next(Path(run).rglob("reading.json")).read_text())
    assert reading["views"] == "tiny" and reading["prompt"] == "<image>\nConvert the document to markdown."

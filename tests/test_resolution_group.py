"""The `resolution` config group: DeepSeek-OCR v1's token budgets chosen with one override, end to end
(Hydra -> model config -> training views -> checkpoint -> reading with the same views)."""

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
from ocr2.modes import MODES, apply_mode
from ocr2.pipeline import OCRPipeline
from ocr2.processing.text import ByteTokenizer
from train.builders import build_model_config, build_run_model_config
from train.data import data_config
from train_harness import ROOT, run_train

CONFIGS = ROOT / "configs"
TOK = ByteTokenizer()


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _micro() -> OCR2Config:
    return build_model_config(_compose(["model=micro"]).model)


def test_every_mode_has_a_config():
    assert sorted(p.stem for p in (CONFIGS / "resolution").glob("*.yaml")) == sorted(MODES)


@pytest.mark.parametrize("name", sorted(MODES))
def test_resolution_override_sets_the_model_geometry(name):
    mc = build_run_model_config(_compose(["model=micro", f"resolution={name}"]))
    mode = MODES[name]
    assert mc.global_view_size == mode.global_size
    assert set(mode.view_sizes) <= set(mc.encoder.query_view_sizes)


def test_no_resolution_leaves_the_model_group_alone():
    assert build_run_model_config(_compose(["model=micro"])) == _micro()


def test_resolution_and_stage_resolutions_together_are_an_error(tmp_path):
    cfg = _compose(["model=micro", "resolution=tiny", "stage.data_mode=single_view", "stage.resolutions=[256]",
                     f"data.path={tmp_path}"])
    with pytest.raises(ValueError, match="stage.resolutions"):
        data_config(cfg, build_run_model_config(cfg))


@pytest.mark.parametrize("name,size", [("tiny", (96, 128)), ("gundam", (1600, 1000))])
def test_example_in_a_mode_fits_the_model(name, size):
    # The example's <image> count must equal what the model's encoder emits for those views, or the loss fails.
    cfg = apply_mode(_micro(), name)
    model = OCR2Model(cfg)
    ex = ExampleEncoder(TOK, cfg, resolution_mode=name)(page_row(0, image=page_image(0, size), size=size))
    assert ex.input_ids.count(cfg.image_token_id) == MODES[name].placeholder_count(size, cfg)
    batch = collate([ex], TOK.pad_id)
    with torch.no_grad():
        out = model(**batch)
    assert torch.isfinite(out.loss)


def test_small_pages_are_squashed_not_padded():
    # v1 Tiny/Small resize straight to the square (no grey bars); our own single_view pads.
    cfg = apply_mode(_micro(), "tiny")
    black = Image.new("RGB", (100, 300), "black")
    ex = ExampleEncoder(TOK, cfg, resolution_mode="tiny")(page_row(0, markdown="x", image=black, size=(100, 300)))
    assert ex.global_view.shape == (3, 512, 512)
    assert torch.allclose(ex.global_view, torch.full_like(ex.global_view, ex.global_view.min().item()))


def test_a_model_without_the_mode_tables_is_refused():
    model = OCR2Model(_micro())
    with pytest.raises(ValueError, match="flow-query tables"):
        OCRPipeline(model, TOK, resolution_mode="tiny")


def test_run_trained_in_a_mode_is_read_in_that_mode(tmp_path):
    from eval.report import evaluate_run

    data = write_pages(tmp_path / "pages", 8)
    write_split(data, "validation", [page_row(i, prefix="v") for i in range(2)])
    run = tmp_path / "run"
    run_train(data, run, ["resolution=tiny", "max_steps=2", "checkpoint.every=2"])
    result = evaluate_run(run, limit=2, max_new_tokens=4)
    assert result["protocol"]["resolution_mode"] == "tiny"
    saved = json.loads(next(Path(run).rglob("config.json")).read_text())
    assert saved["global_view_size"] == 512 and 512 in saved["encoder"]["query_view_sizes"]

"""Synthetic dataset -> TrainLoader -> OCR2Model (tiny): the batches of every stage mode fit the model's inputs."""

import math

import pytest
import torch

from data_pipelines.build_synth import build_synth
from data_pipelines.synth.config import SynthConfig
from ocr2 import OCR2Config, OCR2Model
from ocr2.data import DataConfig, TrainLoader
from ocr2.processing.text import ByteTokenizer

CFG = OCR2Config.from_preset("tiny")
TOK = ByteTokenizer()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    # Little text per page: short sequences keep the model forward below cheap on a CPU.
    build_synth(out, {"train": 4}, SynthConfig(long_side=(320, 320), languages={"en": 1.0}, fill=(0.3, 0.3)))
    return out


def _first_batch(path, **options):
    cfg = dict(path=str(path), batch_size=2, max_length=8192, num_workers=0, epochs=1)
    loader = TrainLoader(DataConfig(**{**cfg, **options}), TOK, CFG)
    return next(iter(loader)), loader


@pytest.mark.parametrize("views,packing,target", [("multi_crop", False, "markdown"),
                                                  ("single:768", True, "markdown"),
                                                  ("single:768", False, "grounded")])
def test_placeholders_match_the_images_of_the_batch(synth, views, packing, target):
    batch, loader = _first_batch(synth, views=(views,), packing=packing, target=target)
    size = batch["global_views"].shape[-1]
    expected = sum(CFG.image_token_count(int(k), global_size=size) for k in batch["num_crops"])
    assert int((batch["input_ids"] == TOK.image_id).sum()) == expected
    assert size == (1024 if views == "multi_crop" else 768) and loader.skip_counts() == {}


def test_a_packed_stage1_batch_gives_the_tiny_model_a_finite_loss(synth):
    # The vision tower dominates CPU time, so one forward on 768 views stands for all modes.
    batch, _ = _first_batch(synth, views=("single:768",), packing=True, batch_size=1, max_length=2048)
    torch.manual_seed(0)
    with torch.no_grad():
        out = OCR2Model(CFG).train()(**batch)
    assert math.isfinite(out.loss.item()) and batch["sequence_ids"].max() >= 1

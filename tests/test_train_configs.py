"""Hydra composition: every config group and experiment composes into a valid model and DeepSpeed config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from train.builders import build_deepspeed_config, build_model_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_into_a_model_config(experiment):
    cfg = _compose([f"experiment={experiment}"])
    build_model_config(cfg.model)


@pytest.mark.parametrize("model", ["tiny", "micro", "small", "official"])
def test_model_group_builds(model):
    mc = build_model_config(_compose([f"model={model}"]).model)
    assert mc.encoder.mask == "causal_flow"


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_micro_heads_are_32_wide(part):
    # With 16-dim heads the CPU model learnt to pick out a visual slot far more slowly (docs/demo.md, "Head dimension").
    sub = getattr(build_model_config(_compose(["model=micro"]).model), part)
    assert sub.hidden_size // sub.num_heads == 32


def test_mask_is_one_override():
    mc = build_model_config(_compose(["model.encoder.mask=raster"]).model)
    assert mc.encoder.mask == "raster"


def test_unknown_model_field_is_an_error():
    with pytest.raises(ValueError, match="no_such_field"):
        build_model_config(_compose(["+model.encoder.no_such_field=1"]).model)


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_deepspeed_config_is_concrete(zero):
    trainer = _compose([f"trainer={'cpu' if zero == 0 else f'zero{zero}'}", "trainer.grad_accum=4"]).trainer
    ds = build_deepspeed_config(trainer, world_size=8, dtype=torch.float32)
    assert ds["zero_optimization"]["stage"] == zero
    assert ds["train_batch_size"] == trainer.micro_batch_size * 4 * 8
    assert "auto" not in repr(ds)


@pytest.mark.parametrize("stage,frozen", [("stage1_encoder", []), ("stage2_query", ["vision_tokenizer"]),
                                          ("stage3_decoder", ["vision_tokenizer", "encoder"])])
def test_stages_freeze_what_the_paper_freezes(stage, frozen):
    assert list(_compose([f"stage={stage}"]).stage.frozen) == frozen

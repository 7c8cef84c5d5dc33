"""Per-module learning-rate multipliers (`stage.lr_mult`): grouping by longest prefix, clear errors, and a real
run where a zero factor keeps a module exactly where it started while the rest trains."""

from __future__ import annotations

import pytest
import torch

from data_helpers import write_pages
from ocr2 import OCR2Config, OCR2Model
from train.stages import param_groups
from train_harness import run_train


@pytest.fixture(scope="module")
def model() -> OCR2Model:
    return OCR2Model(OCR2Config.from_preset("tiny"))


def _factor_of(groups: list[dict], param: torch.nn.Parameter) -> float:
    return next(g["lr_mult"] for g in groups if any(p is param for p in g["params"]))


def test_longest_matching_prefix_sets_the_factor(model):
    groups = param_groups(model, {"encoder": 0.5, "encoder.flow_queries": 0.1})
    query = next(iter(model.encoder.flow_queries.values()))
    assert _factor_of(groups, query) == 0.1
    assert _factor_of(groups, model.encoder.layers[0].self_attn.q_proj.weight) == 0.5
    assert _factor_of(groups, model.lm_head.weight) == 1.0
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_frozen_parameters_are_left_out(model):
    model.vision_tokenizer.requires_grad_(False)
    try:
        grouped = {id(p) for g in param_groups(model, {}) for p in g["params"]}
        assert not any(id(p) in grouped for p in model.vision_tokenizer.parameters())
    finally:
        model.vision_tokenizer.requires_grad_(True)


def test_a_prefix_that_names_no_parameter_is_an_error(model):
    with pytest.raises(ValueError, match="no parameter is named 'vision'"):
        param_groups(model, {"vision": 0.1})  # a prefix must end at a name boundary


def test_zero_factor_holds_a_module_still_in_a_real_run(tmp_path):
    pages = write_pages(tmp_path / "pages", 8)
    run_train(pages, tmp_path / "run", ["max_steps=2", "stage.frozen=[]", "stage.lr=1e-2", "checkpoint.every=2",
                                        "stage.lr_mult={vision_tokenizer: 0.0}"])
    trained = OCR2Model.from_pretrained(tmp_path / "run" / "checkpoints" / "step_000002" / "model")
    torch.manual_seed(0)  # the trainer seeds with cfg.seed (0 in the harness) right before building the model
    initial = OCR2Model(trained.config)
    for (name, p), q in zip(trained.vision_tokenizer.named_parameters(), initial.vision_tokenizer.parameters()):
        assert torch.equal(p, q), name
    assert not torch.equal(trained.lm_head.weight, initial.lm_head.weight)

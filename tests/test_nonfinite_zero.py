"""A non-finite loss is skipped and counted under every ZeRO stage, fp32 and bf16 (ZeRO-3 used to die on it): the
skipped step leaves the weights as they were, and the next step trains on finite gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from data_helpers import write_pages
from train_harness import BASE, initial_checkpoint, metrics, run_train


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    return write_pages(tmp_path_factory.mktemp("pages"), 12)


@pytest.fixture(scope="module")
def initial(pages, tmp_path_factory) -> dict[str, torch.Tensor]:
    """The weights a fresh run starts from: what `run_train(pages, run, ["max_steps=0"])` saves, built in-process."""
    run = tmp_path_factory.mktemp("init") / "run"
    initial_checkpoint(run, [*BASE, f"data.path={pages}"])
    return load_file(str(run / "checkpoints" / "step_000000" / "model" / "model.safetensors"))


@pytest.mark.slow
# ZeRO-0 and ZeRO-3 in fp32; bf16 under ZeRO 1 (DeepSpeed's bf16 optimizer), 2 and 3 (fp32 accumulation).
@pytest.mark.parametrize("zero,precision", [(0, "fp32"), (3, "fp32"), (1, "bf16"), (2, "bf16"), (3, "bf16")])
def test_a_non_finite_step_is_skipped_under_zero(pages, initial, tmp_path, zero, precision):
    trainer = "cpu" if zero == 0 else f"zero{zero}"
    run = tmp_path / "run"
    run_train(pages, run, [f"trainer={trainer}", f"trainer.precision={precision}", "max_steps=2",
                           "checkpoint.every=1", "debug.nonfinite_steps=[1]"])
    m = metrics(run)
    assert m[0]["loss"] is None and m[1]["skipped_steps"] == 1
    assert m[1]["loss"] is not None and m[1]["loss"] == m[1]["loss"]  # step 2 is finite: no NaN leaked into it
    after_skip = load_file(str(run / "checkpoints" / "step_000001" / "model" / "model.safetensors"))
    for key, value in initial.items():
        assert torch.equal(after_skip[key].float(), value.to(after_skip[key].dtype).float()), key

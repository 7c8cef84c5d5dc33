"""Every experiment file runs one real training step (its own file so that a parallel test run spreads the long
training files over workers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_helpers import write_pages
from train_harness import BASE, ROOT, initial_checkpoint, metrics, run_train

EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    return write_pages(tmp_path_factory.mktemp("pages"), 48)


@pytest.fixture(scope="module")
def pretrained(pages, tmp_path_factory) -> Path:
    """A stand-in for a pretrained model (the fine-tuning experiments need one): the initial micro model as a run
    (what `run_train(pages, run, ["max_steps=0"])` leaves, written in-process)."""
    run = tmp_path_factory.mktemp("pretrained") / "run"
    return initial_checkpoint(run, [*BASE, f"data.path={pages}"])


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_one_step(pages, tmp_path, experiment, request):
    # init_from=null: an experiment that starts from an earlier run (memory_tiers: runs/demo) is checked without it;
    # the fine-tuning experiments start from a stand-in pretrained run, with its config (model=checkpoint).
    start = (["model=checkpoint", f"init_from={request.getfixturevalue('pretrained')}"]
             if experiment.startswith("finetune") else ["init_from=null"])
    run_train(pages, tmp_path / "run", [f"experiment={experiment}", "max_steps=1", "trainer.micro_batch_size=2",
                                        "data.num_workers=1", "model.decoder.num_layers=2", "validation.every=0",
                                        *start])
    assert [m["step"] for m in metrics(tmp_path / "run")] == [1]



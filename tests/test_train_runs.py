"""ocr2-train in real processes on CPU (gloo): experiments, stages, ZeRO, exact resume, multi-node, non-finite.
The exports of those runs call ocr2-export's main() in this process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from data_helpers import write_pages
from ocr2 import OCR2Model
from train import export
from train_harness import ROOT, env, free_port, losses, metrics, run_train, train_cmd, BASE



@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    return write_pages(tmp_path_factory.mktemp("pages"), 48)


@pytest.mark.parametrize("stage", ["stage2_query", "stage3_decoder"])
def test_frozen_modules_stay_unchanged(pages, tmp_path, stage):
    """The trainer compares frozen parameters before/after and fails the run if any moved."""
    run_train(pages, tmp_path / "run", [f"stage={stage}", "max_steps=2", f"stage.lr=1e-2"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["frozen_parameters"] > 0 and summary["steps"] == 2


def test_non_finite_step_is_skipped_and_counted(pages, tmp_path):
    run_train(pages, tmp_path / "run", ["max_steps=3", "debug.nonfinite_steps=[2]"])
    m = metrics(tmp_path / "run")
    assert m[1]["loss"] is None and m[2]["skipped_steps"] == 1


def test_consecutive_non_finite_steps_stop_the_run_with_a_checkpoint(pages, tmp_path):
    proc = run_train(pages, tmp_path / "run", ["max_steps=6", "debug.nonfinite_steps=[2,3]",
                                               "nonfinite.max_consecutive=2", "checkpoint.every=1",
                                               "checkpoint.keep_last=1"], check=False)
    assert proc.returncode != 0
    assert "consecutive steps had a non-finite loss" in proc.stderr
    checkpoints = tmp_path / "run" / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "step_000003"
    # keep_last=1, yet the last checkpoint before the divergence survives, and the message names it
    assert (checkpoints / "step_000001").is_dir() and not (checkpoints / "step_000002").is_dir()
    assert f"checkpoint.resume={checkpoints / 'step_000001'}" in proc.stderr


@pytest.mark.slow
def test_zero2_two_processes_match_one_process(pages, tmp_path):
    """Same global batch: 1 process x 2 accumulation steps x 2 readers vs 2 processes x 1 step x 1 reader each."""
    common = ["trainer=zero2", "trainer.micro_batch_size=1", "max_steps=5", "checkpoint.every=100",
              "data.shuffle=false"]
    run_train(pages, tmp_path / "one", common + ["trainer.grad_accum=2", "data.num_workers=2"])
    run_train(pages, tmp_path / "two", common + ["trainer.grad_accum=1", "data.num_workers=1"], nproc=2)
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == 5 and one.keys() == two.keys()
    assert max(abs(one[s] - two[s]) for s in one) <= 1e-5


@pytest.mark.slow
def test_zero3_trains_and_exports_to_the_same_logits(pages, tmp_path):
    run_train(pages, tmp_path / "run", ["trainer=zero3", "max_steps=2", "checkpoint.every=2"], nproc=2)
    out = tmp_path / "export"
    assert export.main([str(tmp_path / "run"), "--out", str(out), "--from-zero"]) == 0  # ocr2-export, in-process
    exported = OCR2Model.from_pretrained(out)
    live = OCR2Model.from_pretrained(tmp_path / "run" / "checkpoints" / "step_000002" / "model")
    ids = torch.tensor([[0, 20, 21, 22, 23]])
    assert torch.equal(exported(ids).logits, live(ids).logits)


@pytest.mark.slow
def test_export_keeps_the_run_reading_recipe(pages, tmp_path):
    # Both export routes (consolidated weights copied; ZeRO partitions merged) carry reading.json along.
    run_train(pages, tmp_path / "run", ["trainer=zero2", "stage.views=[single:256]", "max_steps=1", "checkpoint.every=1"])
    for route in ([], ["--from-zero"]):
        out = tmp_path / f"export{len(route)}"
        assert export.main([str(tmp_path / "run"), "--out", str(out), *route]) == 0, route  # in-process
        assert OCR2Model.from_pretrained(out).reading.views == "single:256", route


@pytest.mark.slow
def test_killed_run_resumes_with_identical_losses(pages, tmp_path):
    common = ["max_steps=8", "checkpoint.every=2", "checkpoint.keep_last=3"]
    run_train(pages, tmp_path / "full", common)
    victim = tmp_path / "victim"
    args = BASE + [f"data.path={pages}", f"run_dir={victim}", *common]
    proc = subprocess.Popen(train_cmd(args), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    pointer = victim / "checkpoints" / "latest"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if pointer.exists() and pointer.read_text().strip() >= "step_000004":
            os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its data workers, as a crash or OOM-kill would
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resumed_from = int(pointer.read_text().strip().split("_")[1])
    assert resumed_from < 8
    run_train(pages, victim, common)  # checkpoint.resume=auto picks up the latest checkpoint
    full, resumed = losses(tmp_path / "full"), losses(victim)
    after = [s for s in full if s > resumed_from]
    assert after and all(resumed[s] == full[s] for s in after)


@pytest.mark.slow
def test_two_node_run_trains_and_checkpoints(pages, tmp_path):
    """Two torchrun launchers (one per simulated node) rendezvous on 127.0.0.1."""
    port = free_port()
    args = BASE + [f"data.path={pages}", f"run_dir={tmp_path / 'run'}", "trainer=zero2", "max_steps=2",
                   "checkpoint.every=2"]
    nodes = [subprocess.Popen(train_cmd(args, nproc=1, nnodes=2, node_rank=r, port=port), cwd=ROOT, env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    outputs = [n.communicate(timeout=600)[0] for n in nodes]
    assert all(n.returncode == 0 for n in nodes), outputs[0][-3000:] + outputs[1][-3000:]
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_000002"
    assert len(metrics(tmp_path / "run")) == 2

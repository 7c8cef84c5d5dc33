"""The prepared GPU check (eval/bench/gpu_readiness.py) on CPU: every section runs and prints (--dry-run), it
refuses to measure without a GPU, and it needs nothing the GPU image lacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from eval.bench import gpu_readiness
from train_harness import ROOT, env


@pytest.fixture(scope="module")
def dry_run_output() -> str:
    proc = subprocess.run([sys.executable, "-m", "eval.bench.gpu_readiness", "--dry-run", "--new-tokens", "4"],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


@pytest.mark.parametrize("line", [
    "[1] attention, vision_tokenizer:", "[1] attention, encoder: ['sdpa", "[1] attention, decoder: ['sdpa",
    "[2] host syncs", "[3] stage-2 step, checkpointing off:", "[3] stage-2 step, checkpointing on :", "[6] MFU",
    "[4] encoder fwd+bwd, 7 views,       sdpa:", "[4] encoder fwd+bwd, 7 views, sdpa_split:", "[4] encoder flex",
    "[4] encoder flash", "[5] greedy generation, one page", "[5] decode, batch  1:", "[5] decode, batch 16:"])
def test_every_section_prints(dry_run_output, line):
    assert line in dry_run_output


def test_without_a_gpu_it_says_so_and_measures_nothing(capsys, monkeypatch):
    monkeypatch.setattr(gpu_readiness.torch.cuda, "is_available", lambda: False)
    assert gpu_readiness.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().out


def test_it_needs_only_what_the_gpu_image_has():
    code = ("import sys, eval.bench.gpu_readiness; "
            "print(sorted(m for m in ('deepspeed', 'hydra', 'omegaconf', 'datasets', 'wandb', 'train') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"

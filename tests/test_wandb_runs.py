"""wandb (offline, no network): one wandb run per training run across resumes, with a readable name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from data_helpers import write_pages
from train_harness import BASE, ROOT, env, train_cmd


def _train(pages: Path, run_dir: Path, extra: list[str]) -> None:
    e = env()
    e["WANDB_MODE"] = "offline"  # the harness disables wandb; this test needs its offline files
    args = BASE + [f"data.path={pages}", f"run_dir={run_dir}", "logger=wandb", "logger.mode=offline", *extra]
    proc = subprocess.run(train_cmd(args), cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _offline_ids(run_dir: Path) -> list[str]:
    return sorted(p.name.rsplit("-", 1)[-1] for p in (run_dir / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_a_resumed_run_logs_to_the_same_wandb_run(tmp_path):
    pages = write_pages(tmp_path / "pages", 8)
    run = tmp_path / "run"
    _train(pages, run, ["max_steps=2", "checkpoint.every=1", "run_name=readable"])
    run_id = (run / "wandb_id.txt").read_text().strip()
    assert _offline_ids(run) == [run_id]
    _train(pages, run, ["max_steps=3", "checkpoint.every=1", "checkpoint.allow_changes=true", "run_name=readable"])
    ids = _offline_ids(run)
    assert len(ids) == 2 and set(ids) == {run_id}  # a second offline segment of the same run, not a new run
    assert "readable" in (run / "config.yaml").read_text()

"""Sweeps through Hydra's submitit launcher: the SLURM preset composes, the same launch path runs a real sweep on
this machine (submitit's local executor), and rank 0's host comes from SLURM's node list."""

from __future__ import annotations

import subprocess

import pytest
from hydra import compose, initialize_config_dir

from configs import CONFIG_DIR
from data_helpers import write_pages
from train.dist import slurm_first_host
from train_harness import BASE, ROOT, env, train_cmd


def test_the_slurm_launcher_preset_composes():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hydra/launcher=ocr2_slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == 8 and launcher.max_num_timeout == 3


@pytest.mark.parametrize("nodelist,host", [("gpu07", "gpu07"), ("gpu[07-09,12]", "gpu07"),
                                           ("gpu[3,5],cpu1", "gpu3"), ("a1,b[2-3]", "a1"), ("", None)])
def test_rank_zero_host_from_the_slurm_node_list(nodelist, host):
    assert slurm_first_host(nodelist) == host


@pytest.mark.slow
def test_a_sweep_runs_through_the_submitit_launcher(tmp_path):
    pages = write_pages(tmp_path / "pages", 8)
    args = ["-m", "hydra/launcher=ocr2_local", *BASE, f"data.path={pages}", f"run_dir={tmp_path / 'sweep'}",
            "max_steps=1", "seed=0,1"]
    proc = subprocess.run(train_cmd(args), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("0", "1"):
        assert (tmp_path / "sweep" / job / "summary.json").exists(), job

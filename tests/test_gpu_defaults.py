"""Defaults for GPU-sized runs: DataLoader workers per rank (`data.num_workers=auto`) and checkpoint cadence of the
GPU presets and the fine-tuning experiment, composed with Hydra as ocr2-train composes them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from configs import CONFIG_DIR
from ocr2 import OCR2Config
from ocr2.data.loader import DataConfig
from train import data as train_data


def _compose(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize("cpus, workers", [(1, 0), (2, 1), (5, 4), (9, 8), (64, 8)])
def test_auto_workers_leave_one_cpu_to_the_rank_and_stop_at_8(cpus, workers):
    assert train_data.resolve_num_workers("auto", cpus) == workers


def test_a_worker_count_is_taken_as_given():
    assert train_data.resolve_num_workers(3, 2) == 3
    assert train_data.resolve_num_workers(0, 16) == 0


@pytest.mark.parametrize("bad", [-1, "many", 1.5])
def test_a_bad_worker_count_is_an_error_naming_the_key(bad):
    with pytest.raises(ValueError, match="data.num_workers"):
        train_data.resolve_num_workers(bad, 4)


def test_torchrun_ranks_share_the_nodes_cpus(monkeypatch):
    monkeypatch.setattr(train_data.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert train_data.cpus_per_rank() == 8


def test_an_srun_task_has_its_own_cpus(monkeypatch):
    monkeypatch.setattr(train_data.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "12")
    assert train_data.cpus_per_rank() == 12


def test_the_run_resolves_auto_for_its_loader(tmp_path, monkeypatch):
    monkeypatch.setattr(train_data, "cpus_per_rank", lambda: 6)
    cfg = _compose(["experiment=finetune", "init_from=x", f"data.path={tmp_path}"])
    assert cfg.data.num_workers == "auto"
    assert train_data.data_config(cfg, OCR2Config.from_preset("tiny")).num_workers == 5


def _loader(workers: int):
    seen = {}
    return SimpleNamespace(cfg=DataConfig(path="x", num_workers=workers), load_state_dict=seen.update), seen


def test_a_resume_with_auto_keeps_the_checkpoints_worker_count():
    loader, seen = _loader(workers=7)
    train_data.restore_state(loader, {"num_workers": 3}, OmegaConf.create({"data": {"num_workers": "auto"}}))
    assert loader.cfg.num_workers == 3 and seen == {"num_workers": 3}


def test_a_resume_with_an_explicit_count_leaves_it_to_the_loader_check():
    loader, _ = _loader(workers=7)
    train_data.restore_state(loader, {"num_workers": 3}, OmegaConf.create({"data": {"num_workers": 7}}))
    assert loader.cfg.num_workers == 7


@pytest.mark.parametrize("overrides, every", [
    ([], 10),  # toy runs
    (["trainer=gpu_zero2"], 500),
    (["trainer=gpu_zero3"], 500),
    (["experiment=finetune", "init_from=x"], 500),
    (["experiment=finetune", "init_from=x", "trainer=gpu_zero3"], 500),
    (["trainer=gpu_zero2", "checkpoint.every=50"], 50),  # the command line wins
])
def test_checkpoint_cadence(overrides, every):
    assert _compose(overrides).checkpoint.every == every


def test_the_rate_command_measures_a_page_of_the_largest_input():
    from train.data_rate import measure

    r = measure(pages=1, width=1275, height=1650)
    assert r["crops"] == 6 and r["global"] == (3, 1024, 1024) and r["pages_per_s"] > 0

"""One device decision: DeepSpeed's accelerator (DS_ACCELERATOR) and train/dist.py's device, backend and precision
agree, also on a machine that can see a GPU (torch.cuda.is_available patched to True)."""

from __future__ import annotations

import pytest
import torch

from train import dist
from train.builders import resolve_precision
from train.device import decide_device


@pytest.fixture
def sees_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda *_: None)


def test_ds_accelerator_cpu_wins_over_a_visible_gpu(sees_a_gpu, monkeypatch):
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    assert decide_device("auto") == "cpu"


def test_auto_on_a_gpu_machine_sets_ds_accelerator_to_cuda(sees_a_gpu, monkeypatch):
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    assert decide_device("auto") == "cuda"
    import os

    assert os.environ["DS_ACCELERATOR"] == "cuda"


def test_a_contradiction_is_an_error(sees_a_gpu, monkeypatch):
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    with pytest.raises(RuntimeError, match="contradicts"):
        decide_device("cuda")


def test_init_distributed_follows_the_decision_on_a_gpu_machine(sees_a_gpu, monkeypatch):
    """The harness's DS_ACCELERATOR=cpu on a GPU machine: CPU device, gloo, fp32 — not CUDA, NCCL and bf16."""
    import deepspeed

    seen = {}
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    monkeypatch.setattr(deepspeed, "init_distributed", lambda dist_backend, **_: seen.update(backend=dist_backend))
    monkeypatch.setattr(dist.tdist, "is_initialized", lambda: False)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = dist.init_distributed("auto", "auto")
    assert info.device.type == "cpu" and seen["backend"] == "gloo"
    assert resolve_precision("auto", info.device) == torch.float32


def test_cuda_runs_pin_their_batches(tmp_path):
    from hydra import compose, initialize_config_dir

    from configs import CONFIG_DIR
    from data_helpers import write_pages
    from ocr2 import OCR2Config
    from ocr2.processing.text import ByteTokenizer
    from train.data import build_train_data

    pages = write_pages(tmp_path / "pages", 2)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"data.path={pages}", "model=micro"])
    model_cfg = OCR2Config.from_preset("tiny")
    for device, pinned in (("cuda", True), ("cpu", False)):
        info = dist.DistInfo(0, 1, 0, torch.device(device))
        loader = build_train_data(cfg, model_cfg, ByteTokenizer(), info, tmp_path)
        assert loader.cfg.pin_memory is pinned, device


def test_under_gloo_deepspeeds_shared_memory_op_is_not_compiled(monkeypatch):
    import importlib

    from train.dist import skip_shm_comm_build

    ds_torch = importlib.import_module("deepspeed.comm.torch")
    monkeypatch.setattr(ds_torch, "build_shm_op", ds_torch.build_shm_op)  # put back after the test
    skip_shm_comm_build()
    assert ds_torch.build_shm_op() is None  # the real one compiles C++ (30-80 s) and returns the op

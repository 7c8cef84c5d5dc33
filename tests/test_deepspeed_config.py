"""The generated DeepSpeed dict: fp32 gradient accumulation and all-reduce under bf16, the GPU presets, and the
pass-through of any ZeRO or DeepSpeed key from the config."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from configs import CONFIG_DIR
from train.builders import build_deepspeed_config
from train.optim import fused_adamw


def _trainer(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides).trainer


def test_bf16_accumulates_and_reduces_gradients_in_fp32():
    ds = build_deepspeed_config(_trainer(["trainer=zero2"]), 8, torch.bfloat16)
    assert ds["bf16"] == {"enabled": True}
    assert ds["data_types"] == {"grad_accum_dtype": "fp32"} and ds["communication_data_type"] == "fp32"


def test_bf16_without_zero_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="bf16 needs ZeRO stage >= 1.*trainer=zero1"):
        build_deepspeed_config(_trainer(["trainer=cpu"]), 1, torch.bfloat16)


def test_fp32_runs_get_no_precision_keys():
    ds = build_deepspeed_config(_trainer(["trainer=cpu"]), 1, torch.float32)
    assert "bf16" not in ds and "data_types" not in ds and "communication_data_type" not in ds


@pytest.mark.parametrize("preset,stage", [("gpu_zero2", 2), ("gpu_zero3", 3)])
def test_gpu_presets(preset, stage):
    trainer = _trainer([f"trainer={preset}"])
    assert trainer.precision == "bf16" and trainer.activation_checkpointing and trainer.device == "cuda"
    assert fused_adamw(trainer.optimizer)
    ds = build_deepspeed_config(trainer, 8, torch.bfloat16)
    assert ds["zero_optimization"]["stage"] == stage and ds["zero_optimization"]["overlap_comm"] is True
    assert ds["zero_optimization"]["reduce_bucket_size"] == 200_000_000


def test_any_zero_or_deepspeed_key_passes_through():
    # New keys take Hydra's `+` (the blocks start empty); keys a preset already sets are plain overrides.
    trainer = _trainer(["trainer=zero3", "+trainer.zero.offload_optimizer={device:cpu,pin_memory:true}",
                        "+trainer.deepspeed.zero_optimization.stage3_max_live_parameters=1000",
                        "+trainer.deepspeed.flops_profiler={enabled:true}"])
    ds = build_deepspeed_config(trainer, 2, torch.float32)
    assert ds["zero_optimization"]["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
    assert ds["zero_optimization"]["stage3_max_live_parameters"] == 1000
    assert ds["zero_optimization"]["stage"] == 3  # merged, not replaced
    assert ds["flops_profiler"] == {"enabled": True}


def test_an_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="trainer.optimizer='adam'"):
        fused_adamw("adam")

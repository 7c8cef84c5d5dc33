"""Hydra config -> library objects: the OCR2Config and the DeepSpeed dict (one source of truth, no "auto")."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ocr2 import OCR2Config
from ocr2.modes import apply_mode


def _deep_merge(base: dict, delta: dict, path: str = "") -> dict:
    for key, value in delta.items():
        if key not in base:
            raise ValueError(f"model config: unknown field {path + key!r}")
        if isinstance(value, dict) and isinstance(base[key], dict):
            _deep_merge(base[key], value, f"{path}{key}.")
        else:
            base[key] = value
    return base


def build_model_config(model_cfg: DictConfig | dict) -> OCR2Config:
    """`preset` plus any OCR2Config fields by path (model.encoder.mask=..., model.decoder.num_layers=...)."""
    d = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    preset = d.pop("preset", "tiny")
    return OCR2Config.from_dict(_deep_merge(OCR2Config.from_preset(preset).to_dict(), d))


def resolution_mode(cfg: DictConfig | dict) -> str | None:
    """The run's `resolution` group choice (a name in ocr2.modes.MODES), or None when the stage's data_mode rules."""
    res = cfg.get("resolution")
    return None if not res else str(res["name"])


def build_run_model_config(cfg: DictConfig) -> OCR2Config:
    """The run's model config: the `model` group, then the `resolution` group's token budget on top of it (its
    global view / crop size, and a flow-query table for each of its view sizes)."""
    model_cfg = build_model_config(cfg.model)
    mode = resolution_mode(cfg)
    return apply_mode(model_cfg, mode) if mode else model_cfg


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]


def build_deepspeed_config(trainer: DictConfig, world_size: int, dtype: torch.dtype) -> dict[str, Any]:
    """Concrete DeepSpeed dict: every value is computed here (DeepSpeed's "auto" is only filled by HF Trainer)."""
    cfg: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": int(trainer.micro_batch_size),
        "gradient_accumulation_steps": int(trainer.grad_accum),
        "train_batch_size": int(trainer.micro_batch_size) * int(trainer.grad_accum) * world_size,
        "gradient_clipping": float(trainer.grad_clip),
        "zero_optimization": {"stage": int(trainer.zero_stage)},
        # We pass a torch AdamW (DeepSpeed's fused/CPU Adam would JIT-compile for minutes on CPU).
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if int(trainer.zero_stage) == 3:
        # Gather full parameters for consolidated saves; keep everything else at DeepSpeed's defaults.
        cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = True
    if dtype == torch.bfloat16:
        cfg["bf16"] = {"enabled": True}
    return cfg

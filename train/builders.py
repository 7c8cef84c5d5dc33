"""Hydra config -> library objects: the OCR2Config and the DeepSpeed dict (one source of truth, no "auto")."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ocr2 import OCR2Config
from ocr2.data import default_prompt
from ocr2.processing.reading import ReadingRecipe
from ocr2.processing.views import get_recipes
from ocr2.query_tables import with_query_tables


def _deep_merge(base: dict, delta: dict, path: str = "") -> dict:
    for key, value in delta.items():
        if key not in base:
            raise ValueError(f"model config: unknown field {path + key!r}")
        if isinstance(value, dict) and isinstance(base[key], dict):
            _deep_merge(base[key], value, f"{path}{key}.")
        else:
            base[key] = value
    return base


def _given(delta: dict) -> dict:
    """The non-null leaves of a `model=checkpoint` group: the fields the run changes from the checkpoint's."""
    out = {}
    for key, value in delta.items():
        if isinstance(value, dict):
            sub = _given(value)
            if sub:
                out[key] = sub
        elif value is not None:
            out[key] = value
    return out


def build_model_config(model_cfg: DictConfig | dict, checkpoint: OCR2Config | None = None) -> OCR2Config:
    """`preset` plus any OCR2Config fields by path (model.encoder.mask=..., model.decoder.num_layers=...).
    `preset: checkpoint` starts from `checkpoint` (the init_from checkpoint's config) and applies the non-null
    fields only."""
    d = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    preset = d.pop("preset", "tiny")
    if preset == "checkpoint":
        if checkpoint is None:
            raise ValueError("model=checkpoint takes the model config from init_from, but init_from is not set")
        return OCR2Config.from_dict(_deep_merge(checkpoint.to_dict(), _given(d)))
    return OCR2Config.from_dict(_deep_merge(OCR2Config.from_preset(preset).to_dict(), d))


def uses_checkpoint_config(cfg: DictConfig) -> bool:
    return cfg.model.get("preset") == "checkpoint"


def stage_views(cfg: DictConfig) -> list[str]:
    """The stage's view recipes (`stage.views`, ocr2/processing/views.py), e.g. [single:768, single:1024]."""
    views = cfg.stage.get("views")
    if not views:
        raise ValueError("stage.views is empty; give at least one view recipe, e.g. stage.views=[multi_crop]")
    return [str(v) for v in ([views] if isinstance(views, str) else views)]


def build_run_model_config(cfg: DictConfig, checkpoint: OCR2Config | None = None) -> OCR2Config:
    """The run's model config: the `model` group (on top of the init_from checkpoint's config for
    model=checkpoint), plus a flow-query table for every view size the stage's view recipes produce (a v1 mode such
    as `small` needs a 640 table the release does not have)."""
    model_cfg = build_model_config(cfg.model, checkpoint)
    return with_query_tables(model_cfg, get_recipes(stage_views(cfg), model_cfg))


def build_reading(cfg: DictConfig, model_cfg: OCR2Config) -> ReadingRecipe:
    """How the run's checkpoints read pages, saved as their reading.json: the views of the stage's largest recipe
    (stage 1 trains at 768 and 1024 and is read at 1024), the prompt it trained with, and the release's decoding
    with answers up to the training sequence length."""
    recipes = get_recipes(stage_views(cfg), model_cfg)
    largest = max(range(len(recipes)), key=lambda i: (recipes[i].global_size, bool(recipes[i].crop_size), -i))
    prompt = cfg.data.get("prompt") or default_prompt(str(cfg.data.target))
    return ReadingRecipe(views=stage_views(cfg)[largest], prompt=prompt, max_new_tokens=int(cfg.data.max_length))


def resolve_precision(precision: str, device: torch.device, zero_stage: int = 1) -> torch.dtype:
    """`auto`: bf16 on CUDA where DeepSpeed keeps fp32 master weights (ZeRO >= 1), else fp32."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and zero_stage >= 1 else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]


def uses_zero_init(trainer: DictConfig) -> bool:
    """ZeRO-3 builds the model under deepspeed.zero.Init unless `trainer.zero_init=false` (train/zero_init.py)."""
    return int(trainer.zero_stage) == 3 and bool(trainer.get("zero_init", True))


def _merge_into(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_into(base[key], value)
        else:
            base[key] = value
    return base


def build_deepspeed_config(trainer: DictConfig, world_size: int, dtype: torch.dtype) -> dict[str, Any]:
    """Concrete DeepSpeed dict: every value is computed here (DeepSpeed's "auto" is only filled by HF Trainer).
    `trainer.zero` adds ZeRO keys (bucket sizes, overlap_comm, offload, prefetch), `trainer.deepspeed` any other
    DeepSpeed key; both are merged over the computed dict, so no DeepSpeed setting needs a code change."""
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
        # zero.Init would otherwise replace torch.nn.functional.linear process-wide with DeepSpeed's own autograd
        # function, for good (it is never restored): other numerics than ZeRO 0-2 for the rest of the process. The
        # stage-3 hooks gather each module's weights before its forward, so plain F.linear needs no help.
        cfg["zero_optimization"]["memory_efficient_linear"] = False
    if dtype == torch.bfloat16:
        if int(trainer.zero_stage) == 0:
            # DeepSpeed's ZeRO-0 keeps no fp32 master weights under bf16 and cannot accumulate gradients in fp32
            # ("unsupported mix of model_dtype=bfloat16 and grad_accum_dtype=float32"): updates would be bf16.
            raise ValueError("trainer.precision=bf16 needs ZeRO stage >= 1 (fp32 master weights, fp32 gradient "
                             "accumulation): use trainer=zero1/zero2/zero3 or trainer=gpu_zero2/gpu_zero3")
        cfg["bf16"] = {"enabled": True}
        # Gradients summed over micro-batches and ranks in bf16 lose the small ones (8 bits of mantissa): accumulate
        # and all-reduce them in fp32, as mixed precision intends.
        cfg["data_types"] = {"grad_accum_dtype": "fp32"}
        cfg["communication_data_type"] = "fp32"
    zero_extra = trainer.get("zero")
    if zero_extra:
        _merge_into(cfg["zero_optimization"], OmegaConf.to_container(zero_extra, resolve=True))
    extra = trainer.get("deepspeed")
    if extra:
        _merge_into(cfg, OmegaConf.to_container(extra, resolve=True))
    return cfg

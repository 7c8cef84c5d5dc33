"""What a run trains: full fine-tuning under the stage's freezing, or LoRA adapters (ocr2/lora.py), and what each
writes into a checkpoint's `<tag>/model/`.

Full: the stage freezes whole top-level modules (`stage.frozen`); `<tag>/model/` holds the weights. LoRA
(`lora.enabled=true`): peft injects adapters into the model in place, every base parameter is frozen (and the
stage's freezing applies to `lora.modules_to_save` as well), and `<tag>/model/` holds PEFT's adapter files beside
config, reading recipe and tokenizer: a few MB per checkpoint instead of the whole model. DeepSpeed trains the
OCR2Model itself either way (the adapters are its submodules), so resume, ZeRO partitioning and activation
checkpointing see one kind of module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch.distributed as tdist
from omegaconf import DictConfig, OmegaConf

from ocr2 import OCR2Model
from ocr2.hub import is_hub_id
from ocr2.lora import LoraSettings, apply_lora, save_adapter
from ocr2.weights import save_state_dict
from train import stages

_PEFT_PREFIX = "base_model.model."  # how a peft wrapper names the wrapped model's state


@dataclass
class Tuning:
    frozen: list[str]  # parameter names that must not move
    peft_model: object | None = None  # the peft wrapper in LoRA mode (the adapters live inside the OCR2Model)

    @property
    def lora(self) -> bool:
        return self.peft_model is not None


def lora_settings(cfg: DictConfig) -> LoraSettings:
    d = OmegaConf.to_container(cfg.lora, resolve=True)
    d.pop("enabled", None)
    return LoraSettings(**d)


def setup(model: OCR2Model, cfg: DictConfig, init_dir: Path | None) -> Tuning:
    frozen = stages.apply_freezing(model, list(cfg.stage.frozen))
    if not cfg.get("lora") or not cfg.lora.enabled:
        return Tuning(frozen)
    if init_dir is None:
        raise ValueError("lora.enabled=true adapts a pretrained model: set init_from (a checkpoint folder, run or "
                         "Hub id)")
    # The adapters record their base: the Hub id as given (portable), else the resolved folder's absolute path.
    base = str(cfg.init_from) if is_hub_id(cfg.init_from) else str(Path(init_dir).resolve())
    peft_model = apply_lora(model, lora_settings(cfg), base=base)
    stages.apply_freezing(model, list(cfg.stage.frozen))  # modules_to_save copies under a frozen module stay frozen
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    return Tuning(frozen, peft_model)


def model_dir_writer(tuning: Tuning, tokenizer, reading, consolidated: bool):
    """`save(engine, path)` writing `<tag>/model/`: config, reading recipe and tokenizer always (ocr2-export needs
    them); the weights when `consolidated` (full runs) or the adapters (LoRA runs, always)."""
    def save(engine, path: Path) -> None:
        state = None
        if consolidated or tuning.lora:
            if engine.zero_optimization_stage() == 3:
                state = engine._zero3_consolidated_16bit_state_dict()  # collective: every rank must call it
            else:
                state = engine.module.state_dict()
        if tdist.get_rank() != 0:
            return
        path.mkdir(parents=True, exist_ok=True)
        config = engine.module.config
        if tuning.lora:
            save_adapter(tuning.peft_model, path, {_PEFT_PREFIX + k: v for k, v in state.items()})
            config.save(path / "config.json")
            reading.save(path)
        elif state is not None:
            save_state_dict(config, state, path, reading=reading)
        else:
            config.save(path / "config.json")
            reading.save(path)
        tokenizer.save(path)

    return save

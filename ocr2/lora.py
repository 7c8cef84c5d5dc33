"""LoRA fine-tuning with the `peft` library: which projections get adapters, and adapter folders in PEFT's format.

Defaults target the decoder, where a new domain or language is learned: its attention projections (q, k, v, o), the
dense SwiGLU of its first layer, the shared experts, and the routed experts. The routed experts are stacked
(E, out, in) parameters rather than `nn.Linear`s (ocr2/modeling/moe.py), so they are adapted through peft's
`target_parameters` (a low-rank delta per expert added to the stacked tensor when it is read); the grouped and
per-expert dispatch paths both see the adapted weights. `encoder=True` also adapts DeepEncoder V2's attention and
MLP. The vision tokenizer is never adapted: it stays frozen as in the paper's stages 2 and 3.

An adapter folder (written by every checkpoint of a LoRA run, `<tag>/model/`) holds PEFT's own files,
`adapter_config.json` (whose `base_model_name_or_path` names the base checkpoint: a local folder or a Hub id) and
`adapter_model.safetensors`, beside ocr2's `config.json`, `reading.json` and the tokenizer. `load_merged` reads such
a folder as one model: base weights, adapters merged in, no peft modules left, so everything downstream (reading,
evaluation, export to any layout) sees a plain OCR2Model.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"

_DECODER_LINEAR = r"decoder\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj|mlp\.shared_experts\.(gate|up|down)_proj)"
_ENCODER_LINEAR = r"encoder\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
_EXPERT_PARAMETERS = ("mlp.experts.gate_proj", "mlp.experts.up_proj", "mlp.experts.down_proj")


@dataclass
class LoraSettings:
    """What gets adapters and how large they are (Hydra's `lora` block maps onto these fields)."""

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0  # peft's parameter adapters (the routed experts) support no dropout
    # Regex over module names (full match); None: the decoder's (and, with `encoder`, the encoder's) projections.
    target_modules: str | list[str] | None = None
    experts: bool = True  # also adapt the routed experts (stacked parameters, peft `target_parameters`)
    encoder: bool = False
    # Top-level modules trained in full beside the adapters (e.g. ["projector"]); saved in the adapter folder.
    modules_to_save: list[str] = field(default_factory=list)

    def __post_init__(self):
        if int(self.r) < 1:
            raise ValueError(f"lora.r must be >= 1, got {self.r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if self.experts and float(self.dropout) != 0.0:
            raise ValueError(f"lora.dropout={self.dropout} with lora.experts=true: peft adapts the stacked expert "
                             "tensors without dropout; set lora.dropout=0 or lora.experts=false")

    def peft_config(self):
        from peft import LoraConfig

        targets = self.target_modules
        if targets is None:
            targets = f".*({_DECODER_LINEAR}|{_ENCODER_LINEAR})" if self.encoder else f".*{_DECODER_LINEAR}"
        return LoraConfig(r=int(self.r), lora_alpha=float(self.alpha), lora_dropout=float(self.dropout),
                          target_modules=targets, bias="none",
                          target_parameters=list(_EXPERT_PARAMETERS) if self.experts else None,
                          modules_to_save=list(self.modules_to_save) or None)


def _has_routed_experts(model: nn.Module) -> bool:
    return any(name.endswith("mlp.experts.gate_proj") for name, _ in model.named_parameters())


def apply_lora(model: nn.Module, settings: LoraSettings, base: str | None = None):
    """Wrap `model` (an OCR2Model) in a peft model: every base parameter frozen, adapters trainable.
    `base`: where the base weights come from (recorded in adapter_config.json for `load_merged`)."""
    from peft import get_peft_model

    if settings.experts and not _has_routed_experts(model):
        settings = dataclasses.replace(settings, experts=False)  # a dense decoder has none to adapt
    config = settings.peft_config()
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as e:
        if "not found" not in str(e):  # peft: "Target modules ... not found in the base model"
            raise
        raise ValueError(f"lora.target_modules={config.target_modules!r} matches no module of the model ({e})") from e
    # Set after wrapping: get_peft_model overwrites it with the model's `name_or_path`, which an OCR2Model lacks.
    peft_model.peft_config["default"].base_model_name_or_path = base
    return peft_model


def base_model(peft_model) -> nn.Module:
    """The OCR2Model inside a peft wrapper (the model itself when it is not wrapped)."""
    get = getattr(peft_model, "get_base_model", None)
    return get() if get is not None else peft_model


def is_adapter_dir(directory) -> bool:
    return (Path(directory) / ADAPTER_CONFIG).exists()


def save_adapter(peft_model, directory, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """PEFT's own adapter files. `state_dict`: the full (gathered, e.g. under ZeRO-3) state of `peft_model`; the
    live parameters when None."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    adapter = get_peft_model_state_dict(peft_model, state_dict=state_dict)
    save_file({k: v.detach().contiguous().cpu() for k, v in adapter.items()}, str(directory / ADAPTER_WEIGHTS),
              metadata={"format": "pt"})
    peft_model.peft_config["default"].save_pretrained(str(directory))


def adapter_base(directory) -> str:
    path = Path(directory) / ADAPTER_CONFIG
    try:
        base = json.loads(path.read_text()).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable PEFT adapter config ({e})") from e
    if not base:
        raise ValueError(f"{path}: base_model_name_or_path is empty, so the base weights of these adapters are unknown")
    return str(base)


def load_merged(cls, directory, dtype: torch.dtype | None = None, device=None, **kwargs):
    """An adapter folder -> one OCR2Model: the base checkpoint's weights in a model of the folder's own config.json,
    the adapters loaded with peft and merged into the weights (in fp32, then cast to `dtype`)."""
    from peft import PeftModel

    from ocr2.config import OCR2Config
    from ocr2.processing.reading import ReadingRecipe
    from ocr2.weights import load_pretrained, resolve_model_dir

    directory = Path(directory)
    base_dir = resolve_model_dir(adapter_base(directory))
    config = OCR2Config.load(directory / "config.json")
    # The base weights go straight into a model of the adapters' config (built on the meta device, filled tensor
    # by tensor); a base of other shapes is the loader's error, listing every mismatch.
    model = load_pretrained(cls, base_dir, dtype=torch.float32, device=device, config=config, **kwargs)
    merged = PeftModel.from_pretrained(model, str(directory), is_trainable=False).merge_and_unload()
    merged.reading = ReadingRecipe.load(directory)
    return merged.to(dtype or torch.float32).eval()

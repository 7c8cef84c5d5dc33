"""Checkpoints: our safetensors directory format, and loading of the official and transformers-port layouts.

Ours: `config.json` (OCR2Config) + `reading.json` (how the model reads pages: ocr2/processing/reading.py) +
`model.safetensors`, or shards `model-0000i-of-0000n.safetensors` with `model.safetensors.index.json` when larger
than `max_shard_size`.

Loading builds the model on the meta device and reads one tensor at a time from safetensors straight into the
requested dtype and device (`assign=True`), so no full-precision copy of the whole model ever exists: the
official bf16 checkpoint loads into bf16 on an 8 GB card. Any missing, unexpected or mis-shaped key is an error
that lists them all.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ocr2.config import MODEL_TYPE, OCR2Config
from ocr2.keymaps import official, official_config, port
from ocr2.processing.reading import RELEASE_READING, ReadingRecipe

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


class CheckpointError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------------- save
def save_pretrained(model, directory, max_shard_size: int = 4 * 1024**3, reading: ReadingRecipe | None = None
                    ) -> None:
    """The model's weights and config, and its reading recipe (`reading`, else the one it was loaded or trained
    with, `model.reading`, else the release's)."""
    save_state_dict(model.config, model.state_dict(), directory, max_shard_size,
                    reading or getattr(model, "reading", None))


def save_state_dict(config: OCR2Config, state: dict[str, torch.Tensor], directory,
                    max_shard_size: int = 4 * 1024**3, reading: ReadingRecipe | None = None) -> None:
    """config.json + reading.json + safetensors (sharded above `max_shard_size` bytes, with an index) for
    `from_pretrained`. `reading`: how this model reads pages (ocr2/processing/reading.py); the release's if None."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config.save(directory / "config.json")
    (reading or RELEASE_READING).save(directory)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_size:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    for old in list(directory.glob("model*.safetensors")) + [directory / INDEX_NAME]:
        old.unlink(missing_ok=True)  # a re-save with fewer shards must not leave stale ones behind
    if len(shards) == 1:
        save_file(shards[0], str(directory / SINGLE_NAME), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(directory / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    total = sum(t.numel() * t.element_size() for t in state.values())
    (directory / INDEX_NAME).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                   indent=2))


# ---------------------------------------------------------------------------------------------------- load
def _weight_files(directory: Path) -> dict[str, Path]:
    """tensor name -> file, from an index json or the single safetensors file(s) in the directory."""
    indexes = sorted(directory.glob("*.safetensors.index.json"))
    if indexes:
        try:
            weight_map = json.loads(indexes[0].read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{indexes[0]}: not a safetensors index ({e})") from e
        return {k: directory / v for k, v in weight_map.items()}
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{directory}: no *.safetensors weights found (only safetensors checkpoints load)")
    mapping = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as h:
                mapping.update({k: f for k in h.keys()})
        except Exception as e:  # safetensors raises its own error types for truncated or corrupt headers
            raise CheckpointError(f"{f}: unreadable safetensors file ({e})") from e
    return mapping


def detect_layout(keys) -> str:
    if official.is_official_layout(keys):
        return "official"
    if port.is_port_layout(keys):
        return "port"
    return "ocr2"


def _raw_config(cfg_path: Path) -> dict | None:
    if not cfg_path.exists():
        return None
    try:
        raw = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({e})") from e
    if not isinstance(raw, dict):
        raise CheckpointError(f"{cfg_path}: not a model config (a JSON object expected, got {type(raw).__name__})")
    return raw


def _config_for(directory: Path, layout: str, config: OCR2Config | None) -> OCR2Config:
    """The model config a checkpoint describes: ocr2's config.json; the port's (`model_type: deepseek_ocr2`,
    every module described); the release's (`model_type: deepseek_vl_v2`: the decoder from `language_config`, the
    vision stack from its `ocr2_config` block when ocr2 wrote it, else the release's hard-coded one); no config.json
    beside official or port weights: the official preset."""
    if config is not None:
        return config
    cfg_path = directory / "config.json"
    if layout == "ocr2":
        if not cfg_path.exists():
            raise CheckpointError(f"{directory}: config.json is missing")
        return OCR2Config.load(cfg_path)
    raw = _raw_config(cfg_path)
    if raw is None:
        return OCR2Config.from_preset("official")
    model_type = raw.get("model_type")
    try:
        # The port's save_pretrained writes the official key layout beside its own config.
        if model_type == "deepseek_ocr2":
            return port.config_from_port(raw)
        if model_type == MODEL_TYPE:  # official or port key names beside an ocr2 config.json
            return OCR2Config.load(cfg_path)
        if model_type == official_config.MODEL_TYPE or "language_config" in raw:
            return official_config.config_from_official(raw)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{cfg_path}: {e}") from e
    raise CheckpointError(f"{cfg_path}: model_type {model_type!r} is not one ocr2 reads ({MODEL_TYPE!r}, "
                          f"{official_config.MODEL_TYPE!r} for the release's layout, 'deepseek_ocr2' for the "
                          f"transformers port's)")


def _mismatch_hint(directory: Path, layout: str, config: OCR2Config | None) -> list[str]:
    """Why the shapes may disagree when the model was built from a release-style config.json: it does not describe
    the vision stack, so the release's (hard-coded) sizes were assumed."""
    if config is not None or layout != "official":
        return []
    raw = _raw_config(directory / "config.json")
    if raw is not None and (official_config.OCR2_KEY in raw or raw.get("model_type") in (MODEL_TYPE, "deepseek_ocr2")):
        return []
    where = ("it has no config.json, so the release's sizes were assumed throughout" if raw is None else
             "its config.json (the release's format) has no ocr2_config block, so the release's sizes were assumed; "
             "the decoder's come from language_config")
    return [f"  note: the vision stack (SAM, DeepEncoder V2, projector input) is not described in config.json "
            f"({where}). Pass config=OCR2Config(...) for a checkpoint with another vision stack."]


def _materialise_buffers(model: torch.nn.Module, device) -> None:
    """Non-persistent buffers (RoPE frequencies) are not in checkpoints; rebuild them after a meta build."""
    for module in model.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf.is_meta:
                if not hasattr(module, "rebuild_buffers"):
                    raise RuntimeError(f"{type(module).__name__}.{name} is not in the checkpoint and cannot be rebuilt")
                module.rebuild_buffers(device)
                break


def read_state_dict(directory, dtype: torch.dtype, device, layout: str | None = None
                    ) -> tuple[str, Iterator[tuple[str, torch.Tensor]], list[str]]:
    """(layout, iterator of (our key, tensor) read lazily in `dtype` on `device`, unexpected-keys list)."""
    directory = Path(directory)
    files = _weight_files(directory)
    layout = layout or detect_layout(files)
    handles: dict[Path, object] = {}

    def get(key: str) -> torch.Tensor:
        f = files[key]
        if f not in handles:
            handles[f] = safe_open(str(f), framework="pt", device=str(device))
        t = handles[f].get_tensor(key)
        t = t.to(dtype) if t.is_floating_point() else t
        # A tensor viewed straight out of the file can sit at an odd alignment, which sends matmuls down other
        # SIMD paths and changes the last bits of the results; a fresh allocation is aligned like any other.
        return t.clone() if t.data_ptr() % 64 else t

    unexpected: list[str] = []
    keys = list(files)
    if layout == "official":
        it = official.convert(keys, get, unexpected)
    elif layout == "port":
        it = port.convert(keys, get, unexpected)
    else:
        it = ((k, get(k)) for k in keys)
    return layout, it, unexpected


def checkpoint_config(directory, config: OCR2Config | None = None, layout: str | None = None) -> OCR2Config:
    """The model config `load_pretrained` would build for `directory`, without reading a weight."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory")
    return _config_for(directory, layout or detect_layout(_weight_files(directory)), config)


def checked_tensors(directory, expected: dict[str, torch.Size], dtype: torch.dtype, device,
                    config: OCR2Config | None = None, layout: str | None = None
                    ) -> Iterator[tuple[str, torch.Tensor]]:
    """(our key, tensor) one at a time, in `dtype` on `device`, for every key of `expected` (key -> shape: the
    state dict of the model `config` builds). After the last tensor, any missing, unexpected or mis-shaped key
    raises one CheckpointError that lists them all. `load_pretrained` collects these into its state dict; a
    ZeRO-3 build copies each into its partitions as it comes (train/zero_init.py)."""
    directory = Path(directory)
    layout = layout or detect_layout(_weight_files(directory))
    _, tensors, unexpected = read_state_dict(directory, dtype, device, layout)
    seen, bad_shape = set(), []
    for key, tensor in tensors:
        if key not in expected:
            unexpected.append(key)
        elif tuple(tensor.shape) != tuple(expected[key]):
            bad_shape.append(f"{key}: checkpoint {tuple(tensor.shape)} vs model {tuple(expected[key])}")
        else:
            seen.add(key)
            yield key, tensor
    missing = sorted(set(expected) - seen - {b.split(":")[0] for b in bad_shape})
    if missing or unexpected or bad_shape:
        lines = [f"{directory} ({layout} layout) does not match the model:", *_mismatch_hint(directory, layout, config)]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {missing}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {sorted(unexpected)}")
        if bad_shape:
            lines.append(f"  shape mismatches ({len(bad_shape)}): {bad_shape}")
        raise CheckpointError("\n".join(lines))


def load_pretrained(cls, directory, dtype: torch.dtype | None = None, device=None,
                    config: OCR2Config | None = None, layout: str | None = None,
                    attn_implementation: str | None = None):
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory")
    dtype = dtype or torch.float32
    device = torch.device(device or "cpu")
    files = _weight_files(directory)
    layout = layout or detect_layout(files)
    cfg = _config_for(directory, layout, config)
    if attn_implementation is not None:
        cfg = dataclasses.replace(cfg, attn_implementation=attn_implementation)
    with torch.device("meta"):
        model = cls(cfg)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    # Every tensor is read and checked before any is assigned: a mismatch leaves no half-loaded model.
    state = dict(checked_tensors(directory, expected, dtype, device, config, layout))
    model.load_state_dict(state, strict=True, assign=True)
    _materialise_buffers(model, device)
    model.reading = ReadingRecipe.load(directory)  # how this checkpoint reads; saved again by save_pretrained
    return model.eval()


def resolve_model_dir(path) -> Path:
    """A from_pretrained directory, given one, a training run (`<run>/checkpoints/latest` -> `<tag>/model`), or a
    Hugging Face Hub id (`deepseek-ai/DeepSeek-OCR-2`: the local cache first, ocr2/hub.py).

    The run layout is written by train/checkpointing.py; it lives here because evaluation reads it too."""
    from ocr2.hub import is_hub_id, snapshot_dir

    if is_hub_id(path):
        return snapshot_dir(str(path))
    path = Path(path)
    if (path / "config.json").exists():
        return path
    ckpts = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    pointer = ckpts / "latest"
    if pointer.exists():
        model_dir = ckpts / pointer.read_text().strip() / "model"
        if (model_dir / "config.json").exists():
            return model_dir
    raise CheckpointError(f"{path}: neither a model directory (config.json) nor a training run with checkpoints")

"""Write a model (its OCR2Config and state dict, our key names) in one of three folder layouts.

- `ocr2`: ocr2's own (`config.json` with `model_type: ocr2`, `reading.json`, `model.safetensors`); what
  `OCR2Model.from_pretrained`, `ocr2-infer` and further training read.
- `official`: the release's (`deepseek-ai/DeepSeek-OCR-2`): its key names (one tensor per routed expert,
  `model.view_seperator`), its `config.json` (`model_type: deepseek_vl_v2`, decoder in `language_config`) plus the
  full OCR2Config under `ocr2_config`, sharded safetensors with `model.safetensors.index.json`; for the release's
  own loader and vLLM's DeepSeek-OCR 2 model.
- `hf`: the transformers port's (`transformers.models.deepseek_ocr2`): its key names (fused `gate_up_proj`), the
  `config.json` its `DeepseekOcr2Config` writes (`model_type: deepseek_ocr2`), generation and processor files; for
  `AutoModelForImageTextToText` / `AutoProcessor`.

Every layout also gets `reading.json` (how the model reads pages; other tools ignore it) and the tokenizer files of
the source checkpoint. Weights of the official and hf layouts are converted and written one tensor at a time
(ocr2/safetensors_stream.py). Docs: docs/export.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ocr2.config import OCR2Config
from ocr2.keymaps import official, official_config, port
from ocr2.layout_checks import layout_problems
from ocr2.processing.reading import RELEASE_READING, ReadingRecipe
from ocr2.processing.text import TOKENIZER_FILE
from ocr2.safetensors_stream import write_sharded

LAYOUTS = ("ocr2", "official", "hf")
# Tokenizer files a checkpoint may carry: ocr2's byte tokenizer, or a transformers tokenizer (the release's).
TOKENIZER_FILES = (TOKENIZER_FILE, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model", "added_tokens.json")
PORT_ARCHITECTURE = "DeepseekOcr2ForConditionalGeneration"


class LayoutError(ValueError):
    pass


def _dtype_name(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> str:
    if dtype is None:
        floats = [t.dtype for t in state.values() if t.is_floating_point()]
        dtype = max(set(floats), key=floats.count) if floats else torch.float32
    return str(dtype).removeprefix("torch.")


def copy_tokenizer(source: Path | None, out: Path) -> list[str]:
    """Copy the tokenizer files `source` has into `out`; returns their names."""
    if source is None:
        return []
    copied = []
    for name in TOKENIZER_FILES:
        if (source / name).is_file() and (source / name).resolve() != (out / name).resolve():
            shutil.copy2(source / name, out / name)
            copied.append(name)
    return copied


def _checked_entries(layout: str, state, dtype, to_entries):
    unexpected: list[str] = []
    entries = to_entries(state, dtype, unexpected)
    if unexpected:
        raise LayoutError(f"the {layout} layout has no names for {len(unexpected)} tensors: {sorted(unexpected)}")
    return entries


def _write_ocr2(cfg, state, out, dtype, max_shard_size, reading, source) -> list[str]:
    from ocr2.weights import save_state_dict

    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    save_state_dict(cfg, state, out, reading=reading, **kwargs)
    copy_tokenizer(source, out)
    return []


def _write_official(cfg, state, out, dtype, max_shard_size, reading, source) -> list[str]:
    entries = _checked_entries("official", state, dtype, official.to_official)
    write_sharded(out, entries, max_shard_size)
    raw = official_config.config_to_official(cfg, _dtype_name(state, dtype))
    (out / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
    reading.save(out)
    copy_tokenizer(source, out)
    return [f"{out}: the release's loader is remote code (modeling_deepseekocr2.py and its companions) that this "
            f"folder does not contain; see docs/export.md"]


def _write_hf(cfg, state, out, dtype, max_shard_size, reading, source) -> list[str]:
    from transformers import GenerationConfig

    entries = _checked_entries("hf", state, dtype, port.to_port)
    write_sharded(out, entries, max_shard_size)
    port_cfg = port.port_config_class()(**port.port_config_kwargs(cfg), architectures=[PORT_ARCHITECTURE],
                                        dtype=_dtype_name(state, dtype))
    port_cfg.save_pretrained(str(out))
    GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id,
                     do_sample=False).save_pretrained(str(out))
    reading.save(out)
    return _write_processor(cfg, out, source)


def _write_processor(cfg: OCR2Config, out: Path, source: Path | None) -> list[str]:
    """The port's processor (image processor + tokenizer) when the source has a transformers tokenizer; else the
    image processor alone and ocr2's tokenizer file."""
    from transformers.models.deepseek_ocr2 import DeepseekOcr2ImageProcessorPil, DeepseekOcr2Processor

    images = DeepseekOcr2ImageProcessorPil(size={"height": cfg.global_view_size, "width": cfg.global_view_size},
                                           tile_size=cfg.crop_size)
    has_hf_tokenizer = source is not None and any((source / f).is_file()
                                                  for f in ("tokenizer.json", "tokenizer_config.json"))
    if not has_hf_tokenizer:
        images.save_pretrained(str(out))
        copied = copy_tokenizer(source, out)
        what = ("ocr2's byte tokenizer (ocr2_tokenizer.json), not a transformers tokenizer"
                if TOKENIZER_FILE in copied else "no tokenizer files")
        return [f"{out}: the source checkpoint has {what}, so AutoTokenizer and AutoProcessor cannot load this "
                f"folder (the model and its config load; ocr2 reads it fully)"]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    processor = DeepseekOcr2Processor(image_processor=images, tokenizer=tokenizer)
    if processor.image_token_id != cfg.image_token_id:
        raise LayoutError(f"{source}: the tokenizer's <image> id is {processor.image_token_id} but the model's "
                          f"image_token_id is {cfg.image_token_id}")
    processor.save_pretrained(str(out))
    return []


_WRITERS = {"ocr2": _write_ocr2, "official": _write_official, "hf": _write_hf}


def write_layout(layout: str, config: OCR2Config, state: dict[str, torch.Tensor], out, *,
                 reading: ReadingRecipe | None = None, tokenizer_dir=None, dtype: torch.dtype | None = None,
                 max_shard_size: int | None = None) -> list[str]:
    """Write `state` (our key names) as `layout` into `out`; floating tensors as `dtype` (None: as they are).
    `tokenizer_dir`: where the tokenizer files come from (the source checkpoint). `max_shard_size` in bytes (None:
    the layout's default: 4 GiB shards for ocr2, one file for official and hf, as the release ships). Returns notes
    for the user (what the folder lacks, where the release's tools would read it differently). Refuses, before
    writing anything, a model the layout cannot hold (LayoutError naming every reason)."""
    if layout not in _WRITERS:
        raise LayoutError(f"unknown layout {layout!r}; choose from {list(LAYOUTS)}")
    errors, warnings = layout_problems(config, layout)
    if errors:
        raise LayoutError(f"this model cannot be written in the {layout} layout:\n  " + "\n  ".join(errors))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = Path(tokenizer_dir) if tokenizer_dir is not None else None
    notes = _WRITERS[layout](config, state, out, dtype, max_shard_size, reading or RELEASE_READING, source)
    return warnings + notes

"""`ocr2-export`: a training checkpoint -> a folder in one of three layouts (docs/export.md).

- `--layout ocr2` (default): a consolidated `from_pretrained` directory (safetensors, config.json, reading.json: the
  views, prompt and decoding the run trained with, and the tokenizer), for ocr2-infer, ocr2-eval, further training;
- `--layout official`: the release's key names and config.json (+ tokenizer), for the release's own loader and vLLM;
- `--layout hf`: the transformers port's (`DeepseekOcr2ForConditionalGeneration`), for transformers' Auto classes.

Accepts a run directory, its `checkpoints/` folder (the `latest` pointer is followed) or one `step_*` tag. The model
is read with `OCR2Model.from_pretrained` from the checkpoint's `model/` folder (which also merges LoRA adapters);
ZeRO-2/3 partitions are merged with DeepSpeed's zero_to_fp32 when that folder holds no weights (or --from-zero).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.layouts import LAYOUTS, write_layout
from ocr2.processing.reading import ReadingRecipe
from ocr2.safetensors_stream import INDEX_NAME, stored_float_dtype
from ocr2.weights import SINGLE_NAME
from train.checkpointing import disk_errors, read_latest
from train.safe_load import UnsafeCheckpointError, weights_only_loads

DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_tag(path: Path) -> Path:
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if path.name.startswith("step_") and path.is_dir():
        return path
    tag = read_latest(path)
    if tag is None:
        raise FileNotFoundError(f"{path}: no checkpoint found (no 'latest' pointer and not a step_* directory)")
    if not (path / tag).is_dir():
        raise FileNotFoundError(f"{path / 'latest'} names {tag}, which does not exist")
    return path / tag


def export(checkpoint: str | Path, out: str | Path, from_zero: bool = False, layout: str = "ocr2",
           dtype: torch.dtype | None = None, max_shard_size: int | None = None, notes: list[str] | None = None
           ) -> Path:
    """Write the checkpoint's model into `out` in `layout`; floating weights as `dtype` (None: as stored). What the
    written folder lacks or where other tools would read it differently is appended to `notes`."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {list(LAYOUTS)}")
    tag_dir = resolve_tag(Path(checkpoint))
    model_dir, out = tag_dir / "model", Path(out)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"{tag_dir}: model/config.json is missing (not an ocr2 training checkpoint)")
    out.mkdir(parents=True, exist_ok=True)
    with disk_errors(out):
        found = _write(tag_dir, model_dir, out, from_zero, layout, dtype, max_shard_size)
    if notes is not None:
        notes.extend(found)
    return out


def _consolidated(model_dir: Path) -> bool:
    """The folder holds ocr2-layout weights that are the model as it is (what save_state_dict writes)."""
    return (model_dir / SINGLE_NAME).exists() or (model_dir / INDEX_NAME).exists()


def _write(tag_dir: Path, model_dir: Path, out: Path, from_zero: bool, layout: str, dtype, max_shard_size
           ) -> list[str]:
    if layout == "ocr2" and dtype is None and max_shard_size is None and _consolidated(model_dir) and not from_zero:
        # Nothing to convert: the files are the export, byte for byte (and no model is loaded).
        for f in model_dir.iterdir():
            shutil.copy2(f, out / f.name)
        return []
    if any(model_dir.glob("*.safetensors")) and not from_zero:
        # from_pretrained reads whatever the trainer wrote there, adapters included (merged into the weights).
        files = sorted(model_dir.glob("model*.safetensors"))
        model = OCR2Model.from_pretrained(model_dir, dtype=dtype or stored_float_dtype(files) or torch.float32)
        config, state, reading = model.config, model.state_dict(), model.reading
    else:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        with weights_only_loads():  # DeepSpeed's .pt files: tensors and plain data only, never code
            state = get_fp32_state_dict_from_zero_checkpoint(str(tag_dir.parent), tag=tag_dir.name)
        # The run's reading recipe goes with the weights (the release's only for a checkpoint that has none).
        config, reading = OCR2Config.load(model_dir / "config.json"), ReadingRecipe.load(model_dir)
    return write_layout(layout, config, state, out, reading=reading, tokenizer_dir=model_dir, dtype=dtype,
                        max_shard_size=max_shard_size)


def _size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    t = text.strip().upper()
    for unit, scale in units.items():
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * scale)
    try:
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a size in bytes or with a unit (e.g. 5GB, 500MiB)") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ocr2-export", description=__doc__.splitlines()[0],
        epilog="layouts: ocr2 = ocr2's own (ocr2-infer, ocr2-eval, init_from); official = the release's "
               "(deepseek-ai/DeepSeek-OCR-2 key names and config.json: its own loader, vLLM); hf = the transformers "
               "port's (AutoModelForImageTextToText, AutoProcessor). See docs/export.md.")
    p.add_argument("checkpoint", help="run dir, its checkpoints/ dir, or a step_* checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--layout", choices=LAYOUTS, default="ocr2",
                   help="ocr2 (default): ocr2's own; official: the release's; hf: the transformers port's")
    p.add_argument("--dtype", choices=list(DTYPES), default="auto",
                   help="weights' dtype (auto: as the checkpoint stores them; the release ships bfloat16)")
    p.add_argument("--max-shard-size", type=_size, default=None,
                   help="largest safetensors file, e.g. 5GB (default: 4GiB for ocr2, one file for official and hf)")
    p.add_argument("--from-zero", action="store_true", help="merge ZeRO-2/3 partitions even if model/ weights exist")
    args = p.parse_args(argv)
    notes: list[str] = []
    try:
        out = export(args.checkpoint, args.out, args.from_zero, args.layout, DTYPES[args.dtype], args.max_shard_size,
                     notes)
    except (OSError, ValueError, ImportError, UnsafeCheckpointError) as e:  # ImportError: hf without the port
        print(f"ocr2-export: {e}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"ocr2-export: note: {note}", file=sys.stderr)
    print(f"ocr2-export: wrote {out} ({args.layout} layout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

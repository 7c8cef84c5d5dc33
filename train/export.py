"""`ocr2-export`: a training checkpoint -> a consolidated `from_pretrained` directory (safetensors, config.json,
reading.json: the views, prompt and decoding the run trained with, and the tokenizer).

Accepts a run directory, its `checkpoints/` folder (the `latest` pointer is followed) or one `step_*` tag.
ZeRO-2/3 partitions are merged with DeepSpeed's zero_to_fp32; checkpoints saved with `checkpoint.consolidated`
already hold `model/` weights, which are used directly (the only route for ZeRO-0/1 checkpoints).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ocr2 import OCR2Config
from ocr2.processing.reading import ReadingRecipe
from ocr2.processing.text import TOKENIZER_FILE
from ocr2.weights import save_state_dict
from train.checkpointing import disk_errors, read_latest
from train.safe_load import UnsafeCheckpointError, weights_only_loads


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


def export(checkpoint: str | Path, out: str | Path, from_zero: bool = False) -> Path:
    tag_dir = resolve_tag(Path(checkpoint))
    model_dir, out = tag_dir / "model", Path(out)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"{tag_dir}: model/config.json is missing (not an ocr2 training checkpoint)")
    out.mkdir(parents=True, exist_ok=True)
    with disk_errors(out):
        _write(tag_dir, model_dir, out, from_zero)
    return out


def _write(tag_dir: Path, model_dir: Path, out: Path, from_zero: bool) -> None:
    if (model_dir / "model.safetensors").exists() and not from_zero:
        for f in model_dir.iterdir():
            shutil.copy2(f, out / f.name)
    else:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        with weights_only_loads():  # DeepSpeed's .pt files: tensors and plain data only, never code
            state = get_fp32_state_dict_from_zero_checkpoint(str(tag_dir.parent), tag=tag_dir.name)
        # The run's reading recipe goes with the weights (the release's only for a checkpoint that has none).
        save_state_dict(OCR2Config.load(model_dir / "config.json"), state, out, reading=ReadingRecipe.load(model_dir))
        if (model_dir / TOKENIZER_FILE).exists():
            shutil.copy2(model_dir / TOKENIZER_FILE, out / TOKENIZER_FILE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ocr2-export", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="run dir, its checkpoints/ dir, or a step_* checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--from-zero", action="store_true", help="merge ZeRO-2/3 partitions even if model/ weights exist")
    args = p.parse_args(argv)
    try:
        out = export(args.checkpoint, args.out, args.from_zero)
    except (OSError, ValueError, UnsafeCheckpointError) as e:
        print(f"ocr2-export: {e}", file=sys.stderr)
        return 2
    print(f"ocr2-export: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

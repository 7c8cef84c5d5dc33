"""Write safetensors shards one tensor at a time, with a Hugging Face style index.

Exporting to another layout renames, splits and fuses tensors (per-expert slices of a stacked (E, out, in) tensor,
gate/up rows concatenated). `safetensors.torch.save_file` needs every tensor of a file in memory at once and refuses
tensors that share storage (the per-expert slices do), so a 3.4-billion-parameter export would hold a second copy
of the model. Here each entry knows its name, shape and dtype up front (so the header can be written first) and
makes its tensor only when its bytes are due: peak memory is the model plus the largest single converted tensor.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length, a JSON header
(`{name: {dtype, shape, data_offsets}}` plus `__metadata__`), padded with spaces to a multiple of 8, then the raw
little-endian bytes of each tensor in header order. Files are read back with the safetensors library itself.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors import safe_open

INDEX_NAME = "model.safetensors.index.json"

_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
           torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
           torch.bool: "BOOL"}
_FROM_NAME = {v: k for k, v in _DTYPES.items()}


@dataclass(frozen=True)
class Entry:
    """One tensor of an export: written under `name`, made by `make()` when its turn comes."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    make: Callable[[], torch.Tensor]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


def target_dtype(t: torch.Tensor, dtype: torch.dtype | None) -> torch.dtype:
    """What an export writes `t` as: `dtype` for floating tensors (None: as it is), integer tensors unchanged."""
    return dtype if dtype is not None and t.is_floating_point() else t.dtype


def _shards(entries: Sequence[Entry], max_shard_size: int | None) -> list[list[Entry]]:
    shards: list[list[Entry]] = [[]]
    size = 0
    for e in entries:
        if shards[-1] and max_shard_size is not None and size + e.nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(e)
        size += e.nbytes
    return shards


def _write_file(path: Path, entries: Sequence[Entry]) -> None:
    header: dict = {"__metadata__": {"format": "pt"}}  # transformers refuses files without format=pt
    offset = 0
    for e in entries:
        if e.dtype not in _DTYPES:
            raise ValueError(f"{path}: {e.name} has dtype {e.dtype}, which this writer does not store")
        header[e.name] = {"dtype": _DTYPES[e.dtype], "shape": list(e.shape),
                          "data_offsets": [offset, offset + e.nbytes]}
        offset += e.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data then starts 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for e in entries:
            t = e.make().detach()
            if tuple(t.shape) != tuple(e.shape) or t.dtype != e.dtype:
                raise ValueError(f"{path}: {e.name} was announced as {e.dtype} {tuple(e.shape)} but made as "
                                 f"{t.dtype} {tuple(t.shape)}")
            # Raw bytes through a uint8 view: no dtype (bf16 included) needs numpy support, and a contiguous CPU
            # tensor is written without a copy.
            f.write(t.to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().data)


def write_sharded(directory: str | Path, entries: Sequence[Entry], max_shard_size: int | None = None) -> list[Path]:
    """`model-0000i-of-0000n.safetensors` (at most `max_shard_size` bytes each, unless one tensor is larger; None:
    one file) and `model.safetensors.index.json`, the layout of the release and of transformers' save_pretrained.
    Stale shards of an earlier export in `directory` are removed first. Returns the files written."""
    if sys.byteorder != "little":  # safetensors stores little-endian; raw tensor bytes would be wrong here
        raise RuntimeError("writing safetensors needs a little-endian machine")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{directory}: tensor names written twice: {dup}")
    for old in list(directory.glob("model*.safetensors")) + [directory / INDEX_NAME]:
        old.unlink(missing_ok=True)
    shards = _shards(entries, max_shard_size)
    files, weight_map = [], {}
    for i, shard in enumerate(shards, 1):
        path = directory / f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        _write_file(path, shard)
        files.append(path)
        weight_map.update({e.name: path.name for e in shard})
    index = {"metadata": {"total_size": sum(e.nbytes for e in entries)}, "weight_map": weight_map}
    (directory / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return files


def stored_float_dtype(files: Sequence[Path]) -> torch.dtype | None:
    """The floating dtype most tensors of these safetensors files are stored in (None if they hold none); read
    from the headers only."""
    counts: dict[str, int] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as h:
            for k in h.keys():
                name = h.get_slice(k).get_dtype()
                if name in ("F64", "F32", "F16", "BF16"):
                    counts[name] = counts.get(name, 0) + 1
    return _FROM_NAME[max(counts, key=counts.get)] if counts else None

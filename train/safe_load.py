"""Reading DeepSpeed checkpoints without running code from them.

DeepSpeed writes its `.pt` files with `torch.save` and reads them back with full unpickling (it asks PyTorch not
to restrict the loader): a `.pt` file planted in (or copied into) a run directory runs any code it likes during
`checkpoint.resume=...` or `ocr2-export`. Inside `weights_only_loads()` every `torch.load` (DeepSpeed's checkpoint
engine and its zero_to_fp32 included) uses PyTorch's restricted unpickler instead, which builds only tensors,
plain containers and the few classes allow-listed below, and refuses anything else with an error naming the file.

The allow-list is what DeepSpeed's ZeRO 0-3 checkpoints (fp32 and bf16) hold besides tensors and plain data, read
off real checkpoints with `torch.serialization.get_unsafe_globals_in_checkpoint`: its loss-scaler object, the
ZeRO stage enum and the tensor-fragment address record; plus numpy arrays, which checkpoints written before the
RNG state was stored as plain lists contain (numpy's `_reconstruct` only rebuilds arrays of plain dtypes; their
items go through the same restricted unpickler).
"""

from __future__ import annotations

import contextlib
import importlib
import pickle

import torch

ALLOWED_GLOBALS = (
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
    "numpy._core.multiarray._reconstruct",
    "numpy.ndarray",
    "numpy.dtype",
)


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint file holds objects a DeepSpeed checkpoint never contains: it was refused, nothing ran."""


def _resolve(name: str):
    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None  # e.g. numpy 1.x names numpy.core; a class this install lacks cannot be in its checkpoints


def allowed_globals() -> list:
    return [g for g in map(_resolve, ALLOWED_GLOBALS) if g is not None]


@contextlib.contextmanager
def weights_only_loads():
    """Within the block, `torch.load` never unpickles code: weights_only=True with the allow-list above."""
    real_load = torch.load

    def safe_load(f, map_location=None, *args, **kwargs):
        kwargs["weights_only"] = True
        try:
            with torch.serialization.safe_globals(allowed_globals()):
                return real_load(f, map_location, *args, **kwargs)
        except pickle.UnpicklingError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UnsafeCheckpointError(f"{f}: refused to load: it holds objects that a DeepSpeed checkpoint "
                                        f"never contains, so it may run code ({first})") from e

    torch.load = safe_load
    try:
        yield
    finally:
        torch.load = real_load

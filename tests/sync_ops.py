"""Count the ops that would make the host wait for the GPU (a device-to-host sync on CUDA), on CPU.

A `TorchDispatchMode` sees every aten op the Python API issues. Counted: reading a value back
(`_local_scalar_dense`: `.item()`, `int()`, `bool()`; `is_nonzero`; `equal`), ops whose output size depends on the
data (`nonzero`, `masked_select`, `unique*`, boolean-mask indexing, `repeat_interleave` with tensor repeats),
and `bincount` (CUDA reads the input's max back even with minlength). Not visible: `Tensor.tolist()`
(no aten op): code that must stay sync-free must not use it on device tensors."""

from __future__ import annotations

import collections

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_READBACK = {"_local_scalar_dense", "is_nonzero", "equal", "item"}
_DATA_SIZED = {"nonzero", "masked_select", "unique_consecutive", "_unique", "_unique2", "unique_dim",
               "unique_dim_consecutive", "bincount"}
_INDEXING = {"index", "index_put", "index_put_", "_index_put_impl_"}


def _bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in (indices or ()))


class SyncCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name.split("::")[-1]
        overload = func._overloadname
        if (name in _READBACK or name in _DATA_SIZED or (name in _INDEXING and _bool_index(args))
                or (name == "repeat_interleave" and overload == "Tensor")
                or (name == "repeat_interleave" and overload == "self_Tensor" and not (kwargs or {}).get("output_size"))):
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

"""Rebuild cheap activations in backward instead of keeping them: selective recomputation without a checkpoint.

Autograd keeps every tensor an op needs for its backward. Where a cheap op's output feeds a matmul, the output is
kept only because the matmul needs it for its weight gradient, while the cheap op's own backward already keeps its
input. Rebuilding the output from that input in backward costs one elementwise pass and frees a tensor for the
whole of forward and backward. Where it is used:
- the GELU between SAM's two MLP linears (the hidden layer is 4x the width: 102 MiB per block at the official
  width for a 1024² view and two 768² crops, 8,704 patches);
- the SiLU and the product of a SwiGLU (4 hidden-sized tensors kept become 2);
- a LayerNorm's output before a linear (rebuilt from the input the norm keeps anyway);
- SAM attention's output in the layout `proj` takes (rebuilt from the kernel's own saved output), and the two
  decomposed rel-pos factors the kernel takes (two small einsums over the query it keeps).

`rebuilt_in_backward((out, fn), ...)` is a context: while it is open, whatever autograd saves that is `out` or a
view of it is stored as the recipe `fn` (plus the view's geometry) and `fn()` runs again under no_grad when
backward needs it. No matmul is re-run (a plain `torch.utils.checkpoint` around `act + linear` would recompute the
linear too), and the modules' own calls are wrapped, so a LoRA-wrapped or ZeRO-3-partitioned linear still runs its
hooks. Inside other saved-tensor hooks (a `torch.utils.checkpoint`ed block, which keeps nothing anyway) it steps
aside. `fn` re-runs the same deterministic op on the same input, so it gives the same values bit for bit, and it
must give them in the same layout (checked).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator

import torch


class _Recipe:
    __slots__ = ("fn", "size", "stride", "offset", "base_stride")

    def __init__(self, fn: Callable[[], torch.Tensor], view: torch.Tensor, base_offset: int, base_stride):
        self.fn = fn
        self.size, self.stride = view.size(), view.stride()
        self.offset = view.storage_offset() - base_offset
        self.base_stride = base_stride

    def rebuild(self) -> torch.Tensor:
        with torch.no_grad():
            base = self.fn()
        if base.stride() != self.base_stride or base.storage_offset():
            raise RuntimeError(f"rebuilt_in_backward: the recipe gave strides {base.stride()} (offset "
                               f"{base.storage_offset()}), the forward had {self.base_stride}")
        return base.as_strided(self.size, self.stride, self.offset)


_ACTIVE = threading.local()  # per thread: the recipes of every open `rebuilt_in_backward`, innermost last

# Tensors below this are kept as they are: rebuilding one costs a few Python calls and an op launch in backward
# whatever its size, which on a toy model is more than the memory is worth (+8% on a 32-wide SAM block's fwd+bwd).
# At the official widths every rebuilt tensor is 12 MiB or more. Tests that check the rebuilding itself at tiny
# sizes set it to 0.
MIN_BYTES = 1 << 20
_top_hooks = getattr(torch._C._autograd, "_top_saved_tensors_default_hooks", None)


def _foreign_hooks_active() -> bool:
    """Whether saved-tensor hooks other than ours are open (`torch.utils.checkpoint`, an offloading context): then
    they decide what is kept, and ours would hide the tensors from them (a checkpointed block would keep what it
    is meant to drop). Without torch's query, assume so."""
    if _top_hooks is None:
        return True
    top = _top_hooks(False)
    return top is not None and not getattr(top[0], "_ocr2_rebuild", False)


def rebuilt_in_backward(*pairs: tuple[torch.Tensor, Callable[[], torch.Tensor]]) -> contextlib.AbstractContextManager:
    """A context within which saved tensors that share storage with one of the `out`s are kept as their recipe.
    Contexts nest: an inner one also applies the recipes of those around it. It does nothing (and costs next to
    nothing, so callers need no fast path of their own) when no graph is recorded, for `out`s under `MIN_BYTES`,
    and inside other saved-tensor hooks (a checkpointed block)."""
    if not torch.is_grad_enabled():
        return contextlib.nullcontext()
    pairs = tuple((out, fn) for out, fn in pairs if out.untyped_storage().nbytes() >= MIN_BYTES)
    if not pairs or _foreign_hooks_active():
        return contextlib.nullcontext()
    return _rebuilding(pairs)


@contextlib.contextmanager
def _rebuilding(pairs: tuple[tuple[torch.Tensor, Callable[[], torch.Tensor]], ...]) -> Iterator[None]:
    # Only the storage address and geometry of each `out`, never the tensor: autograd keeps the hooks as long as
    # the graph, and a reference here would keep alive exactly what this is meant to free.
    recipes = [(out.untyped_storage().data_ptr(), out.dtype, out.storage_offset(), out.stride(), fn)
               for out, fn in pairs]
    outer = getattr(_ACTIVE, "recipes", [])
    active = outer + recipes

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        for base_ptr, dtype, base_offset, base_stride, fn in active:
            if ptr == base_ptr and t.dtype == dtype:
                return _Recipe(fn, t, base_offset, base_stride)
        _count(t)
        return t

    pack._ocr2_rebuild = True
    _ACTIVE.recipes = active
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, _unpack):
            yield
    finally:
        _ACTIVE.recipes = outer


def _unpack(saved):
    return saved.rebuild() if isinstance(saved, _Recipe) else saved


def _count(t: torch.Tensor) -> None:
    record = getattr(_ACTIVE, "kept", None)
    if record is not None:
        record.add(t)


class KeptTensors:
    """What autograd kept for backward while `kept_for_backward` was open, as weak references: a tensor counts only
    while the graph that saved it is alive, so read it before dropping the forward's output."""

    def __init__(self):
        self._refs: list[weakref.ref] = []

    def add(self, t: torch.Tensor) -> None:
        self._refs.append(weakref.ref(t))

    def storages(self, exclude: Iterable[torch.Tensor] = ()) -> dict[int, int]:
        """{storage address: bytes} of the distinct storages still held, those of `exclude` (parameters) left out."""
        skip = {t.untyped_storage().data_ptr() for t in exclude}
        out: dict[int, int] = {}
        for ref in self._refs:
            t = ref()
            if t is not None and t.untyped_storage().data_ptr() not in skip:
                out[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return out

    def nbytes(self, exclude: Iterable[torch.Tensor] = ()) -> int:
        return sum(self.storages(exclude).values())


@contextlib.contextmanager
def kept_for_backward() -> Iterator[KeptTensors]:
    """Records what autograd keeps for backward while open, rebuilt tensors not included (they are recipes): the
    measurement behind the memory planner's cross-check and the tests. Contexts of `rebuilt_in_backward` inside
    keep working, which a plain `saved_tensors_hooks` around the forward would switch off."""
    record = KeptTensors()

    def pack(t: torch.Tensor) -> torch.Tensor:
        record.add(t)
        return t

    pack._ocr2_rebuild = True  # ours: contexts inside still rebuild (and record through `_count`)
    previous = getattr(_ACTIVE, "kept", None)
    _ACTIVE.kept = record
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield record
    finally:
        _ACTIVE.kept = previous

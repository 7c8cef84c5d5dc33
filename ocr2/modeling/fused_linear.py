"""One matmul for several Linear layers that read the same input (q/k/v), when no gradient is tracked.

The checkpoint layout keeps `q_proj`, `k_proj` and `v_proj` as separate modules: key maps, LoRA targets, freezing
and the optimizer all name them. While decoding, each is a kernel launch (plus its dispatcher work) per layer per
token, so inference concatenates the three weights once and keeps the result until any of them changes:

- changed in place (`load_state_dict`, an optimizer step, `copy_`): the weight's version counter moves;
- replaced (`model.to(...)`, `p.data = ...`): its storage (data pointer), dtype, device or shape differ. The cache
  holds an alias of each source weight, so its storage cannot be freed and its address reused by a new weight
  meanwhile; the owning module drops the cache in `_apply` (`.to`, `.cuda`, `.half`), so moving a model frees
  the old copies at once rather than at the next forward.

The fused path is skipped (None: the caller runs the separate layers) whenever it could differ from calling the
modules: an autograd graph to record (training keeps three layers, so what autograd saves is unchanged), a
module that is not a plain `nn.Linear` (a LoRA wrapper), weights that are not whole local tensors (DeepSpeed
ZeRO-3 partitions, inference tensors without a version counter), or inside `torch.compile` (it traces the
separate layers; Inductor schedules them). Costs memory: one more copy of the
fused weights (q/k/v: ~3% of the official decoder) while the model is used for inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _plain(linear: nn.Module) -> bool:
    if type(linear) is not nn.Linear:
        return False
    w = linear.weight
    return (not hasattr(w, "ds_id") and w.shape == (linear.out_features, linear.in_features)
            and not w.is_inference())


class _EmptyWhenCopied:
    """Derived state starts empty in a copy or a pickle of its module: it is rebuilt on first use, never duplicated
    or saved (subclasses take no constructor arguments)."""

    def __deepcopy__(self, memo):
        return type(self)()

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


class FusedProjection(_EmptyWhenCopied):
    """Holds the concatenated weight (and bias) of a group of Linears; not a module (nothing is saved)."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        """Drop the fused copy (and the aliases that keep the source weights' storage alive)."""
        self._sources: tuple[torch.Tensor, ...] = ()
        self._versions: tuple[int, ...] = ()
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def _fresh(self, tensors: tuple[torch.Tensor, ...]) -> bool:
        return (len(tensors) == len(self._sources)
                and all(t.data_ptr() == s.data_ptr() and t.dtype == s.dtype and t.device == s.device
                        and t.shape == s.shape for t, s in zip(tensors, self._sources))
                and tuple(t._version for t in tensors) == self._versions)

    def output(self, x: torch.Tensor, *linears: nn.Linear) -> torch.Tensor | None:
        """x @ [W_1; W_2; ...]^T (+ biases) — the outputs of `linears` side by side — or None when the fused
        path does not apply (see the module docstring)."""
        if torch.compiler.is_compiling() or not all(_plain(m) for m in linears):
            return None
        weights = tuple(m.weight for m in linears)
        has_bias = [m.bias is not None for m in linears]
        if any(has_bias) and not all(has_bias):
            return None
        tensors = weights + (tuple(m.bias for m in linears) if has_bias[0] else ())
        if torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in tensors)):
            return None  # autograd would record (and save) the fused copy: training keeps the three layers
        if has_bias[0] and any(m.bias.is_inference() or hasattr(m.bias, "ds_id") for m in linears):
            return None
        if not self._fresh(tensors):
            self.rebuild(tensors, len(weights))
        return F.linear(x, self.weight, self.bias)

    def rebuild(self, tensors: tuple[torch.Tensor, ...], n_weights: int) -> None:
        # Built outside inference mode even when called from it: the copy outlives this call, and an inference
        # tensor would refuse later uses that a normal one allows (being saved by autograd, in-place updates).
        # (`inference_mode(False)` turns grad mode back on, hence the no_grad inside it.)
        with torch.inference_mode(False), torch.no_grad():
            self.weight = torch.cat(tensors[:n_weights], dim=0)
            self.bias = torch.cat(tensors[n_weights:], dim=0) if len(tensors) > n_weights else None
            self._sources = tuple(t.detach() for t in tensors)
        self._versions = tuple(t._version for t in tensors)


class DerivedState(_EmptyWhenCopied):
    """A slot for tensors derived from a module's weights (`value`), empty again in a copy or a pickle of the
    module: derived state is rebuilt on first use, never duplicated or saved."""

    def __init__(self):
        self.value = None

"""Building the model for ZeRO-3 under `deepspeed.zero.Init`: every parameter is partitioned over the ranks as its
module is created, so no rank ever holds the whole model (trainer.zero_init, on by default for stage 3).

Two things stand in the way, and both are handled here rather than in ocr2/modeling:

- Initialisers. zero.Init partitions a module's parameters when its own `__init__` returns, so the initialisers a
  parent runs afterwards (`OCR2Model.reset_parameters`, `VisionTokenizer.init_weights`, `Conv2d.reset_parameters`)
  see empty placeholders (`_calculate_fan_in_and_fan_out` raises on them; `normal_` silently writes nothing).
  During the build every `torch.nn.init` initialiser is recorded instead of run (`deferred_init`); afterwards the
  calls are replayed in their original order on CPU tensors of the full shape in the default dtype, one at a time,
  and each parameter's last value is copied into its partitions (`replay`). The CPU random stream then advances
  exactly as in an ordinary build, so a fresh model is bit for bit the one `OCR2Model(config)` builds from the same
  seed, and host memory holds one parameter at a time. With `init_from` covering every weight nothing is replayed
  (an ordinary fine-tuning start draws no random numbers either).
- Buffers. zero.Init creates floating tensors in the run's dtype (its wrapped `torch.arange` included), so RoPE's
  fp32 `inv_freq` would come out bf16; every module that owns non-persistent buffers rebuilds them afterwards
  (`RotaryEmbedding.rebuild_buffers`), and a module that cannot is an error.

Weights from `init_from` are read tensor by tensor (ocr2.weights.checked_tensors, with the same checks as
`from_pretrained`) and copied into the partitions under `GatheredParameters(modifier_rank=0)`: one parameter is
whole at a time. Every rank reads the checkpoint (the page cache serves the ranks of one node from one read).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

log = logging.getLogger("ocr2.train")

# Every initialiser of torch.nn.init that writes a tensor (torch's own modules and ocr2/modeling call these through
# the module attribute, e.g. `init.kaiming_uniform_`, so replacing the attribute reaches them).
INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")


@dataclass
class InitCall:
    tensor: torch.Tensor
    fn: Callable
    args: tuple
    kwargs: dict


def full_shape(t: torch.Tensor) -> torch.Size:
    """A ZeRO-3 parameter's whole shape (its `.shape` is the empty placeholder's while partitioned)."""
    return t.ds_shape if hasattr(t, "ds_shape") else t.shape


@contextlib.contextmanager
def deferred_init(calls: list[InitCall]) -> Iterator[None]:
    """Within: torch.nn.init's initialisers append an InitCall to `calls` and leave the tensor as it is; fan-in /
    fan-out (which biases' bounds are computed from) reads a partitioned parameter's whole shape."""
    saved = {name: getattr(nn.init, name) for name in (*INITIALISERS, "_calculate_fan_in_and_fan_out")}

    def recorder(fn: Callable) -> Callable:
        def record(tensor, *args, **kwargs):
            calls.append(InitCall(tensor, fn, args, kwargs))
            return tensor
        return record

    fans = saved["_calculate_fan_in_and_fan_out"]
    try:
        for name in INITIALISERS:
            setattr(nn.init, name, recorder(saved[name]))
        nn.init._calculate_fan_in_and_fan_out = lambda t: fans(torch.empty(full_shape(t), device="meta"))
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)


def write_parameter(param: nn.Parameter, value: torch.Tensor) -> None:
    """Copy a whole value into a ZeRO-3 parameter's partitions (rank 0's value is broadcast to all)."""
    import deepspeed
    import torch.distributed as tdist

    with deepspeed.zero.GatheredParameters([param], modifier_rank=0):
        if not tdist.is_initialized() or tdist.get_rank() == 0:
            with torch.no_grad():
                param.data.copy_(value)


def replay(calls: list[InitCall], model: nn.Module, write: Callable = write_parameter) -> int:
    """Run the recorded initialisers in order on scratch CPU tensors; write each parameter's final value. Returns
    how many parameters were written."""
    owners = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    last = {id(c.tensor): i for i, c in enumerate(calls)}
    written = 0
    for i, call in enumerate(calls):
        if id(call.tensor) not in owners:
            # An initialiser ran on a tensor that is not (or not yet) a parameter, e.g. `nn.Parameter(init(t))`:
            # its value cannot be placed. The ordinary build handles it: trainer.zero_init=false.
            raise RuntimeError(f"zero.Init build: torch.nn.init.{call.fn.__name__} ran on a tensor of shape "
                               f"{tuple(full_shape(call.tensor))} that is not a parameter of the model; build "
                               "without zero.Init (trainer.zero_init=false)")
        scratch = torch.empty(full_shape(call.tensor), dtype=torch.get_default_dtype())  # as an ordinary build
        call.fn(scratch, *call.args, **call.kwargs)
        if last[id(call.tensor)] == i:
            write(call.tensor, scratch)
            written += 1
    return written


def rebuild_buffers(model: nn.Module) -> None:
    """Non-persistent buffers were created under zero.Init's dtype cast: recompute them (fp32 RoPE frequencies)."""
    for module in model.modules():
        owned = [n for n in module._non_persistent_buffers_set if module._buffers.get(n) is not None]
        if not owned:
            continue
        if not hasattr(module, "rebuild_buffers"):
            raise RuntimeError(f"zero.Init build: {type(module).__name__} has non-persistent buffers {owned} it "
                               "cannot rebuild; build without zero.Init (trainer.zero_init=false)")
        module.rebuild_buffers(module._buffers[owned[0]].device)


def load_partitioned(model: nn.Module, tensors: Iterable[tuple[str, torch.Tensor]],
                     keep: Callable[[str], bool] = lambda key: True) -> tuple[set[str], list[str], list[str]]:
    """Copy (key, tensor) pairs into a zero.Init-built model: parameters into their partitions, persistent
    buffers as they are. Returns (loaded keys, unexpected keys, shape mismatches); `keep` filters keys."""
    params = dict(model.named_parameters(remove_duplicate=False))
    buffers = dict(model.named_buffers(remove_duplicate=False))
    loaded, unexpected, bad = set(), [], []
    for key, tensor in tensors:
        if not keep(key):
            continue
        target = params.get(key, buffers.get(key))
        if target is None:
            unexpected.append(key)
        elif tuple(full_shape(target)) != tuple(tensor.shape):
            bad.append(f"{key}: checkpoint {tuple(tensor.shape)} vs run {tuple(full_shape(target))}")
        elif key in params:
            write_parameter(target, tensor)
            loaded.add(key)
        else:
            with torch.no_grad():
                target.copy_(tensor)
            loaded.add(key)
    return loaded, unexpected, bad


def build_partitioned(build: Callable[[], nn.Module], ds_config: dict) -> tuple[nn.Module, list[InitCall]]:
    """`build()` under zero.Init with initialisers deferred; buffers rebuilt. Returns the model and the recorded
    initialiser calls (for `replay`)."""
    import deepspeed

    calls: list[InitCall] = []
    state = torch.get_rng_state()
    # dtype comes from the config (bf16.enabled or fp32): zero.Init's explicit `dtype=` argument is overridden by
    # the accelerator's fp16/bf16 support in DeepSpeed 0.19 (an operator-precedence slip), giving bf16 on CPU.
    with deepspeed.zero.Init(config_dict_or_path=ds_config), deferred_init(calls):
        model = build()
    torch.set_rng_state(state)  # nothing was drawn; keep it so whatever follows draws as after an ordinary build
    rebuild_buffers(model)
    return model, calls

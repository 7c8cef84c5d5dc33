"""Interleaved wall-clock timing of two callables (ours, the port): warm-up once, then alternate, so that load
drifting on a shared machine hits both sides alike."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import torch


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_calls(fns: Sequence[Callable], repeats: int, device="cpu",
               setups: Sequence[Callable | None] | None = None) -> list[list[float]]:
    """Seconds per call of each fn, `repeats` each after one warm-up call, interleaved. `setups[i]` (untimed)
    runs before every call of `fns[i]`: e.g. rewinding a KV cache to its fixed length."""
    setups = list(setups) if setups is not None else [None] * len(fns)
    times: list[list[float]] = [[] for _ in fns]
    for fn, setup in zip(fns, setups):  # warm-up: allocator pools, lazily built tables, kernel selection
        if setup:
            setup()
        fn()
    for _ in range(repeats):
        for fn, setup, ts in zip(fns, setups, times):
            if setup:
                setup()
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            ts.append(time.perf_counter() - start)
    return times

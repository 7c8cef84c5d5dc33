"""The machine's measured ceilings: the matmul peak (the best FLOP/s of a large square `torch.mm` on this device,
dtype and thread count), which the benchmark's achieved FLOP/s are read against (a datasheet peak means nothing
for a shared 2-core VM, and even on a GPU the reachable fraction of it depends on the dtype), and the streaming
bandwidth of a matrix-vector product, which bounds a decode step from below (one token reads every weight it uses
once and does two FLOPs per weight: at batch 1 it is a gemv, limited by bytes, not FLOPs)."""

from __future__ import annotations

import time

import torch

# Big enough to be compute-bound and to amortise dispatch, small enough for a second or two on 2 CPU cores.
DEFAULT_N = {"cpu": 2048, "cuda": 8192}


def matmul_peak(device, dtype: torch.dtype, n: int | None = None, repeats: int = 5) -> float:
    """FLOP/s of the fastest of `repeats` (n x n) @ (n x n) products after one warm-up."""
    device = torch.device(device)
    n = n or DEFAULT_N.get(device.type, 4096)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return 2.0 * n ** 3 / _best_time(lambda: torch.mm(a, b, out=out), device, repeats)


def _best_time(fn, device: torch.device, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls after one warm-up (kernel choice, page faults on the output): the
    best run, since interference on a shared machine only ever slows a run down."""
    best = float("inf")
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def gemv_bandwidth(device, dtype: torch.dtype, mib: int = 512, width: int = 1280, repeats: int = 5) -> float:
    """Bytes/s of the fastest of `repeats` `torch.mv` over a (rows, `width`) matrix of `mib` MiB after one warm-up:
    how fast this device streams weights through the op a batch-1 decode step is made of (the LM head at the
    official widths is a 662 MB one). The matrix is far larger than any cache, so it comes from memory."""
    device = torch.device(device)
    rows = (mib << 20) // (width * torch.empty(0, dtype=dtype).element_size())
    g = torch.Generator().manual_seed(0)
    w = torch.randn(rows, width, generator=g).to(device=device, dtype=dtype)
    x = torch.randn(width, generator=g).to(device=device, dtype=dtype)
    out = torch.empty(rows, device=device, dtype=dtype)
    return w.nbytes / _best_time(lambda: torch.mv(w, x, out=out), device, repeats)

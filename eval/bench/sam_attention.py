"""`python -m eval.bench.sam_attention`: SAM's global rel-pos attention at the official shapes, three kernels.

Times forward and forward + backward of one global attention (B=1, 12 heads, head dim 64) over the 64x64 grid of
a 1024² view (L=4096) and the 48x48 grid of a 768² crop (L=2304) for
- `new`: the blocked kernel in `ocr2.modeling.rel_pos_attention` (scores in one reused buffer per block, base-2
  exp, log-sum-exp saved so backward needs no softmax reduction),
- `previous`: the kernel it replaced (SDPA per block of rows in forward, softmax recomputed in backward), kept
  below as `_PreviousBlockedRelPosAttention`,
- `dense`: SDPA with the dense (L, L) bias (what the port did; its math path when the bias needs a gradient).
Prints a table: median time (wall clock, or `--clock cpu` on a shared machine), achieved GFLOP/s, fraction of a
measured fp32 matmul peak (a large `torch.mm` on the same thread count and clock), the bytes autograd saves for
backward, and the peak resident memory of a fresh process running the case once (`--memory`; off by default, it
spawns one process per case).

FLOPs are counted the same way for all kernels so the rates compare directly: forward 4·L²·d per head (QK^T and
PV), backward 2.5x that (QK^T recomputed, dV, dP, dQ, dK), whether or not a kernel actually recomputes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from ocr2.modeling import rel_pos_attention as kernel

HEADS, HEAD_DIM = 12, 64
GRIDS = {4096: (64, 64), 2304: (48, 48)}


class _PreviousBlockedRelPosAttention(torch.autograd.Function):
    """The kernel before issue 22's rework, verbatim but for its names: forward runs SDPA's fused CPU kernel on
    each block of 64 query rows with that block's bias; backward recomputes each block's softmax."""

    FORWARD_SCORES, BACKWARD_SCORES = 1 << 18, 1 << 20

    @staticmethod
    def _row_blocks(length: int, scores: int):
        rows = max(8, min(length, scores // length))
        return [slice(start, min(start + rows, length)) for start in range(0, length, rows)]

    @staticmethod
    def forward(ctx, q, k, v, rel_h, rel_w):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        out = torch.empty_like(q)
        cls = _PreviousBlockedRelPosAttention
        for sl in cls._row_blocks(q.shape[1], cls.FORWARD_SCORES):
            bias = kernel._bias(rel_h[None, :, sl], rel_w[None, :, sl])
            out[:, sl] = F.scaled_dot_product_attention(q[None, :, sl], k[None], v[None], attn_mask=bias)[0]
        ctx.save_for_backward(q, k, v, rel_h, rel_w, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, rel_h, rel_w, out = ctx.saved_tensors
        batch, length, d = q.shape
        h, w = rel_h.shape[-1], rel_w.shape[-1]
        scale = d ** -0.5
        grad_out = grad_out.contiguous()
        delta = (grad_out * out).sum(dim=-1, keepdim=True)
        qs, kt, vt = q * scale, k.transpose(1, 2), v.transpose(1, 2)
        dq = torch.empty_like(q)
        dk, dv = torch.zeros_like(k), torch.zeros_like(v)
        d_rel_h, d_rel_w = torch.empty_like(rel_h), torch.empty_like(rel_w)
        cls = _PreviousBlockedRelPosAttention
        for sl in cls._row_blocks(length, cls.BACKWARD_SCORES // batch):
            s = torch.bmm(qs[:, sl], kt)
            s.view(batch, -1, h, w).add_(rel_h[:, sl, :, None]).add_(rel_w[:, sl, None, :])
            p = torch.softmax(s, dim=-1)
            g = grad_out[:, sl]
            dv.baddbmm_(p.transpose(1, 2), g)
            ds = torch.bmm(g, vt).sub_(delta[:, sl]).mul_(p)
            grid = ds.view(batch, -1, h, w)
            d_rel_h[:, sl] = grid.sum(dim=-1)
            d_rel_w[:, sl] = grid.sum(dim=-2)
            dq[:, sl] = torch.bmm(ds, k)
            dk.baddbmm_(ds.transpose(1, 2), qs[:, sl])
        return dq.mul_(scale), dk, dv, d_rel_h, d_rel_w


def _previous(q, k, v, rel_h, rel_w):
    b, n, length, d = q.shape
    flat = lambda t: t.reshape(b * n, length, t.shape[-1])  # noqa: E731
    return _PreviousBlockedRelPosAttention.apply(flat(q), flat(k), flat(v), flat(rel_h), flat(rel_w)).view(q.shape)


def _dense(q, k, v, rel_h, rel_w):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=kernel._bias(rel_h, rel_w))


KERNELS = {"new": kernel.rel_pos_attention, "previous": _previous, "dense": _dense}


def _inputs(length: int, grad: bool) -> list[torch.Tensor]:
    h, w = GRIDS[length]
    g = torch.Generator().manual_seed(0)
    shape = (1, HEADS, length)
    # Magnitudes like a trained SAM block's: unit-variance q, k, v; rel-pos terms of order one.
    tensors = [torch.randn(*shape, HEAD_DIM, generator=g) for _ in range(3)]
    tensors += [torch.randn(*shape, h, generator=g), torch.randn(*shape, w, generator=g)]
    return [t.requires_grad_(grad) for t in tensors]


def _step(name: str, inputs: list[torch.Tensor], backward: bool) -> None:
    out = KERNELS[name](*inputs)
    if backward:
        out.backward(torch.ones_like(out))
        for t in inputs:
            t.grad = None


def _saved_bytes(name: str, length: int) -> int:
    """Bytes autograd keeps between forward and backward (each saved tensor's storage counted once)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    inputs = _inputs(length, grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = KERNELS[name](*inputs)
    del out
    return sum(storages.values())


def _peak_rss(name: str, length: int, backward: bool, threads: int) -> int:
    """Peak resident bytes above the inputs of a fresh process running the case once."""
    code = ("import json, sys, torch\n"
            f"torch.set_num_threads({threads})\n"
            "from eval.bench import sam_attention as b\n"
            f"inputs = b._inputs({length}, {backward})\n"
            "before = b._rss('VmRSS')\n"
            f"b._step({name!r}, inputs, {backward})\n"
            "print(json.dumps(b._rss('VmHWM') - before))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"memory probe for {name} at L={length} failed:\n{done.stderr}")
    return int(json.loads(done.stdout.strip().splitlines()[-1]))


def _rss(field: str) -> int:
    """VmRSS (now) or VmHWM (high-water mark) of this process, bytes. Not getrusage's ru_maxrss: Linux carries
    that across fork and exec, so a child would report its parent's peak."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _median_time(fn, repeats: int, clock=time.perf_counter) -> float:
    fn()  # warm-up: allocator, MKL's buffers
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def matmul_peak(repeats: int = 5, n: int = 2048, clock=time.perf_counter) -> float:
    """GFLOP/s of a large square fp32 `torch.mm` on the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / _median_time(lambda: torch.mm(a, b), repeats, clock) / 1e9


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lengths", type=int, nargs="+", default=list(GRIDS), choices=list(GRIDS))
    p.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    p.add_argument("--memory", action="store_true", help="also the peak RSS of each case (one process each)")
    p.add_argument("--clock", choices=list(CLOCKS), default="wall",
                   help="cpu: this process's CPU time (all its threads), for a machine other jobs share: on one "
                        "thread it leaves out the time the OS gives to them")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]
    peak = matmul_peak(clock=clock)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"SAM global attention, B=1, {HEADS} heads, head dim {HEAD_DIM}, fp32, {args.threads} thread(s), "
          f"median of {args.repeats}, {args.clock} clock; fp32 mm peak {peak:.0f} GFLOP/s; load average {load}")
    print("| L (grid) | kernel | pass | time (ms) | GFLOP/s | of peak | saved for bwd (MiB) |"
          + (" peak RSS (MiB) |" if args.memory else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if args.memory else ""))
    for length in args.lengths:
        h, w = GRIDS[length]
        forward_flops = 4 * length * length * HEAD_DIM * HEADS
        for name in args.kernels:
            saved = _saved_bytes(name, length) / 2 ** 20
            for backward in (False, True):
                inputs = _inputs(length, grad=backward)
                seconds = _median_time(lambda: _step(name, inputs, backward), args.repeats, clock)
                flops = forward_flops * (3.5 if backward else 1.0)
                row = (f"| {length} ({h}x{w}) | {name} | {'fwd+bwd' if backward else 'fwd'} | {seconds * 1e3:.0f} | "
                       f"{flops / seconds / 1e9:.1f} | {flops / seconds / 1e9 / peak:.0%} | "
                       f"{saved if backward else 0:.1f} |")
                if args.memory:
                    row += f" {_peak_rss(name, length, backward, args.threads) / 2 ** 20:.0f} |"
                print(row, flush=True)


if __name__ == "__main__":
    main()

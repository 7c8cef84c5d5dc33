"""One side of one workload in a fresh process: its peak RSS and, optionally, its times.

A fresh process per (model, workload) is the only clean CPU peak: the allocator keeps what it once took, and two
models in one process share it. At the official widths it is also the only way to time a training step on a
small machine — one model with its gradients and AdamW state is ~11 GB, two would not fit. The process builds
the port model from the size's seed (ours: the same weights through the key map, then the port is dropped), resets
the peak (`/proc/self/clear_refs`, so building and converting do not count), runs the workload `1 + repeats`
times and prints JSON: RSS before the workload, the peak, and the timed runs after the first.

    python -m eval.bench.child '{"who": "ours", "workload": "train", "size": "small", ...}'
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from eval.bench import heap

ROOT = Path(__file__).resolve().parents[2]


def rss_now_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS. False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_kib() -> int:
    """This process image's peak RSS (VmHWM; getrusage's ru_maxrss survives `exec` and would report the parent's
    peak at fork time when that was higher)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def run_child(spec: dict) -> dict:
    from ocr2 import OCR2Model

    from eval.bench.model import build_port, make_inputs, ours_config, ours_state, port_config, workloads

    torch.set_num_threads(spec["threads"])
    dtype = getattr(torch, spec.get("dtype", "float32"))
    cfg = ours_config(port_config(spec["size"]), spec["backend"])
    port = build_port(spec["size"])
    dummy = torch.nn.Linear(1, 1)  # the side this process does not hold (never called)
    if spec["who"] == "ours":
        ours = OCR2Model(cfg)
        ours.load_state_dict(ours_state(port), strict=True)
        del port
        gc.collect()
        pair = (ours.to(dtype=dtype), dummy)
    else:
        pair = (dummy, port.to(dtype=dtype))
    x = make_inputs(cfg, spec["crops"], "cpu", dtype)
    ours_fn, port_fn = workloads(*pair, x, spec["new_tokens"])[spec["workload"]]
    fn = ours_fn if spec["who"] == "ours" else port_fn
    before = rss_now_kib()
    heap_before = heap.heap_in_use() if heap.available() else None
    reset = reset_peak_rss()
    times = []
    for _ in range(1 + spec.get("repeats", 1)):  # the first run warms up (optimiser state, allocator pools)
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    out = {"before_kib": before, "peak_kib": peak_rss_kib(), "peak_reset": reset, "times": times[1:]}
    if heap_before is not None:  # one more run, sampled: the sampling thread stays out of the timed runs
        with heap.HeapPeak(interval_s=5e-4) as sampled:
            fn()
        out.update(heap_before_kib=heap_before // 1024, heap_peak_kib=sampled.peak // 1024)
    return out


def spawn(spec: dict) -> dict:
    """Run `run_child(spec)` in a fresh interpreter and return its JSON."""
    res = subprocess.run([sys.executable, "-m", "eval.bench.child", json.dumps(spec)], capture_output=True,
                         text=True, cwd=ROOT)
    if res.returncode:
        raise RuntimeError(f"bench child {spec['who']}/{spec['workload']} failed (exit {res.returncode}):\n"
                           f"{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(run_child(json.loads(sys.argv[1]))))

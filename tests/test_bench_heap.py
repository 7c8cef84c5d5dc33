"""The bench's heap figure (eval/bench/heap.py): malloc's bytes in use, sampled, and its rows in the report."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch

from eval.bench import heap

pytestmark = pytest.mark.skipif(not heap.available(), reason="mallinfo2 is glibc's (2.33+)")

MIB = 1 << 20


def test_a_live_tensor_counts_in_the_heap_and_a_freed_one_does_not():
    before = heap.heap_in_use()
    t = torch.ones(64 * MIB // 4)
    held = heap.heap_in_use()
    del t
    after = heap.heap_in_use()
    assert 63 * MIB < held - before < 66 * MIB
    assert after - before < MIB


def test_the_sampler_keeps_the_peak_of_a_tensor_freed_before_the_end():
    with heap.HeapPeak(interval_s=1e-4) as sampled:
        start = heap.heap_in_use()
        t = torch.ones(48 * MIB // 4)
        time.sleep(0.05)  # held for 500 sampling intervals
        del t
    assert sampled.peak - start > 47 * MIB
    assert sampled.samples > 2


def test_a_bench_child_reports_the_heap_beside_the_rss():
    from eval.bench.child import run_child

    out = run_child(dict(who="ours", workload="encoder", size="tiny", backend="auto", threads=1, crops=0,
                         new_tokens=2, repeats=1))
    assert out["heap_peak_kib"] > out["heap_before_kib"] > 0


def test_the_report_has_heap_rows_when_both_sides_have_them(monkeypatch):
    from eval.bench import model
    from eval.bench.model import run

    def fake_spawn(spec):
        ours = spec["who"] == "ours"
        return {"before_kib": 1000 * 1024, "peak_kib": (1500 if ours else 2000) * 1024, "peak_reset": True,
                "times": [0.1], "heap_before_kib": 900 * 1024, "heap_peak_kib": (1200 if ours else 1900) * 1024}

    monkeypatch.setattr(model, "spawn", fake_spawn)
    args = SimpleNamespace(size="tiny", backend="auto", dtype="float32", crops=0, new_tokens=2, cache_lens=[16],
                           repeats=1, decode_repeats=1, max_spread=10.0, json=None)
    text = "\n".join(run(args, torch.device("cpu"), torch.float32, {"memory"}))
    heap_rows = [line for line in text.splitlines() if line.startswith("peak heap in use MiB")]
    assert len(heap_rows) == 2  # vision fwd+bwd and generate
    assert "1200" in heap_rows[0] and "1900" in heap_rows[0]

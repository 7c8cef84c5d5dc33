"""The decode step's bandwidth floor (eval/bench/floor.py) and its place in `ocr2-bench`'s report."""

from types import SimpleNamespace

from eval.bench.floor import decode_floor_lines
from eval.bench.model import Row, run
from eval.bench.stats import Sample


def test_the_floor_is_the_bytes_over_the_bandwidth_and_bounds_the_ratio():
    rows = [Row("decode step, 600 cached (ms)", Sample([0.040, 0.040, 0.040]), Sample([0.050, 0.050, 0.050]), 1e3)]
    # 900 MB + 100 MB at 25 GB/s: 40 ms. Ours reaches it; the port at 50 ms allows at most 1.25x.
    lines = decode_floor_lines(rows, {600: (900e6, 100e6)}, 25e9, 0.1)
    assert "-> 40 ms" in lines[1]
    assert "ours 40.0 ms (100% of the floor's speed)" in lines[1]
    assert "port 50.0 ms (80% of the floor's speed)" in lines[1]
    assert "at most 1.25x" in lines[1]


def test_a_step_faster_than_the_floor_gives_no_ceiling_and_says_rerun():
    # 1 GB at 10 GB/s is 100 ms; ours at 90 ms means the bandwidth was measured low (a busy host).
    rows = [Row("decode step, 600 cached (ms)", Sample([0.090, 0.090, 0.090]), Sample([0.110, 0.110, 0.110]), 1e3)]
    line = decode_floor_lines(rows, {600: (900e6, 100e6)}, 10e9, 0.1)[1]
    assert "measured bandwidth is too low" in line and "at most" not in line


def test_a_noisy_side_gives_no_ceiling():
    rows = [Row("decode step, 600 cached (ms)", Sample([0.04, 0.04, 0.04]), Sample([0.03, 0.05, 0.09]), 1e3)]
    line = decode_floor_lines(rows, {600: (900e6, 100e6)}, 25e9, 0.1)[1]
    assert "port noisy" in line and "at most" not in line


def test_the_report_prints_the_bandwidth_and_the_floor(monkeypatch):
    from eval.bench import model, peak

    monkeypatch.setattr(model, "gemv_bandwidth", lambda device, dtype: peak.gemv_bandwidth(device, dtype, mib=16))
    args = SimpleNamespace(size="tiny", backend="auto", dtype="float32", crops=0, new_tokens=4, cache_lens=[16], repeats=1,
                           decode_repeats=1, max_spread=10.0, json=None)
    import torch

    lines = run(args, torch.device("cpu"), torch.float32, {"decode"})
    text = "\n".join(lines)
    assert "measured gemv bandwidth:" in text
    assert "decode step floor" in text and "  16 cached:" in text

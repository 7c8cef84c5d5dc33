"""ocr2-bench scaling's tables and plot from synthetic sweeps (eval/bench/scaling.py); nothing is timed."""

import pytest

from eval.bench.scaling import Sweep, format_sweep, plot, slope_of
from eval.bench.stats import NOISY, Sample


def _sweep(port_noise: bool = False) -> Sweep:
    sw = Sweep("page cost vs crops", "crop", "s", 1.0, "s", 1.0)
    for k in range(7):
        sw.xs.append(k)
        sw.points["ours"].append(Sample([1.0 + 0.5 * k] * 3))
        wild = [0.1, 5.0, 9.0] if port_noise and k == 3 else [2.0 + 1.25 * k] * 3
        sw.points["port"].append(Sample(wild))
    return sw


def test_slope_per_crop_is_the_least_squares_fit_of_the_medians():
    sw = _sweep()
    assert slope_of(sw.xs, sw.points["ours"], 0.1) == (pytest.approx(0.5), pytest.approx(1.0))
    text = "\n".join(format_sweep(sw, 0.1))
    assert "ours: 0.5 s (r² 1.000)" in text and "port: 1.25 s (r² 1.000)" in text
    assert "2.00x" in text and "2.38x" in text  # crops=0: port 2.0 s over ours 1.0 s; crops=6: 9.5 / 4.0
    assert NOISY not in text


def test_a_noisy_point_refuses_the_point_and_the_slope_through_it():
    lines = format_sweep(_sweep(port_noise=True), 0.1)
    assert NOISY in lines[3 + 3]  # the crops=3 row
    assert lines[-1].endswith(f"port: {NOISY}") and "ours: 0.5 s" in lines[-1]


def test_plot_writes_a_png(tmp_path):
    out = tmp_path / "scaling.png"
    msg = plot([_sweep(), _sweep(port_noise=True)], str(out), 0.1, "synthetic")
    if "skipped" in msg:  # matplotlib not installed: the message says so
        pytest.skip(msg)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cache_sweep_prints_its_bandwidth_floor():
    sw = Sweep("decode step vs cached positions", "position", "ms", 1e3, "µs", 1e6)
    sw.xs = [600, 8000]
    sw.points = {"ours": [Sample([0.037] * 3), Sample([0.044] * 3)], "port": [Sample([0.04] * 3), Sample([0.06] * 3)]}
    sw.floor_slope, sw.floor_note = 20480 / 29e9, "20.5 KB at 29 GB/s"
    assert "  bandwidth floor per position: 0.7062 µs (20.5 KB at 29 GB/s)" in format_sweep(sw, 0.1)

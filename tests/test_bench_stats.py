"""The benchmarks' noise rule and slope fit (eval/bench/stats.py), and that a refused figure reaches the tables."""

import math

import pytest

from eval.bench.model import Row, format_table
from eval.bench.stats import NOISY, Sample, cell, fit_line, refused, relative_iqr


def test_spread_is_iqr_over_median():
    assert relative_iqr([1.0, 1.0, 1.0, 1.0, 1.0]) == 0.0
    # inclusive quartiles of 1..5 are 2 and 4: IQR 2 over median 3
    assert relative_iqr([5.0, 1.0, 3.0, 2.0, 4.0]) == pytest.approx(2 / 3)
    assert relative_iqr([2.0]) == 0.0


def test_noise_rule_refuses_spread_negatives_and_non_finite():
    assert not refused(1.0, 0.05, max_spread=0.1)
    assert refused(1.0, 0.5, max_spread=0.1)
    assert refused(-0.2)  # a derived figure below zero (e.g. a difference of two noisy times)
    assert refused(math.nan) and refused(math.inf)
    assert cell(-3.0) == NOISY
    assert cell(1.23456, 0.01) == "1.235"


def test_table_prints_noisy_rerun_for_a_spread_out_series():
    steady = Sample([1.00, 1.01, 0.99, 1.00, 1.02])
    wild = Sample([0.5, 1.0, 3.0, 0.7, 2.5])  # IQR 1.8 over median 1.0
    lines = format_table([Row("vision fwd+bwd (s)", steady, wild)], peak=1e11, max_spread=0.1)
    row = lines[-1]
    assert "1.000" in row  # ours is kept
    assert row.count(NOISY) == 2  # the port's figure and the ratio built from it
    assert "x" not in row.split(NOISY)[-1]  # no speedup printed next to a refused figure


def test_table_refuses_a_negative_derived_figure():
    negative = Sample([-0.1, -0.1, -0.1])  # e.g. a rate from a time difference that came out negative
    lines = format_table([Row("decoding (s)", negative, Sample([1.0, 1.0, 1.0]))], peak=1e11, max_spread=0.1)
    assert lines[-1].count(NOISY) == 2 and "-0.1" not in lines[-1]


def test_fit_line_recovers_a_synthetic_slope():
    xs = [0, 1, 2, 3, 4, 5, 6]
    slope, intercept, r2 = fit_line(xs, [2.5 + 0.75 * x for x in xs])
    assert (slope, intercept, r2) == (pytest.approx(0.75), pytest.approx(2.5), pytest.approx(1.0))
    noisy = [2.5 + 0.75 * x + d for x, d in zip(xs, [0.05, -0.04, 0.03, -0.05, 0.02, 0.04, -0.03])]
    slope, _, r2 = fit_line(xs, noisy)
    assert slope == pytest.approx(0.75, abs=0.02) and 0.99 < r2 < 1.0
    with pytest.raises(ValueError):
        fit_line([1, 1], [2, 3])

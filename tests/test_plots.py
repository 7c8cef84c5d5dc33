"""Plots people look at (eval/plots.py, eval/research/flow_plot.py): direction of better, missing values, all-zero
metrics, labels that fit, and a reading path with a colour bar."""

from __future__ import annotations

import itertools
import math

import matplotlib
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.patches import Rectangle

from eval.plots import (
    ALL_ZERO, MISSING, NO_VALUES, bars_figure, loss_curves, loss_figure, metric_bars, metric_spread, spread_figure,
)

matplotlib.use("Agg")

LOWER = ["page_ned", "text_edit", "reading_order_edit", "repetition_rate"]


def _bars(ax) -> list[Rectangle]:
    """The bars of a bar plot (ax.bar adds its rectangles to ax.patches; the axes' frame is not among them)."""
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _bar_at(ax, x: float) -> list[Rectangle]:
    return [b for b in _bars(ax) if abs(b.get_x() + b.get_width() / 2 - x) < 1e-6]


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


# ---------------------------------------------------------------------------------------------- direction
@pytest.mark.parametrize("metric", LOWER)
def test_error_metrics_say_lower_is_better(metric):
    for fig in (bars_figure({"a": {metric: 0.2}, "b": {metric: 0.4}}, metric),
                spread_figure({"a": [0.2, 0.3], "b": [0.4]}, metric)):
        ax = fig.axes[0]
        assert "lower is better" in ax.get_ylabel() and "lower is better" in ax.get_title()
        assert "higher" not in ax.get_ylabel() + ax.get_title()
        _close(fig)


def test_vision_gain_is_higher_is_better():
    for fig in (bars_figure({"a": {"vision_gain": 0.5}, "b": {"vision_gain": -0.1}}, "vision_gain"),
                spread_figure({"a": [0.5, 0.4], "b": [-0.1]}, "vision_gain")):
        ax = fig.axes[0]
        assert "higher is better" in ax.get_ylabel() and "higher is better" in ax.get_title()
        assert "lower" not in ax.get_ylabel() + ax.get_title()
        _close(fig)


def test_explicit_direction_wins_and_an_unknown_metric_claims_none():
    fig = bars_figure({"a": {"page_ned": 0.1}}, "page_ned", lower_is_better=False)
    assert "higher is better" in fig.axes[0].get_ylabel()
    _close(fig)
    fig = bars_figure({"a": {"mystery": 0.1}}, "mystery")
    label = fig.axes[0].get_ylabel()
    assert "lower is better" not in label and "higher is better" not in label and "no better direction" in label
    _close(fig)


# ---------------------------------------------------------------------------------------------- missing values
@pytest.mark.parametrize("missing", [None, float("nan")])
def test_a_missing_value_has_no_bar_and_an_na_label(missing):
    fig = bars_figure({"a": {"page_ned": 0.3}, "b": {"page_ned": missing}, "c": {"page_ned": 0.1}, "d": {}},
                      "page_ned")
    ax = fig.axes[0]
    assert len(_bars(ax)) == 2
    assert _bar_at(ax, 1) == [] and _bar_at(ax, 3) == []  # no zero-height bar standing in for the missing value
    assert [b.get_height() for b in _bars(ax)] == pytest.approx([0.3, 0.1])
    na = [t for t in ax.texts if t.get_text() == MISSING]
    assert sorted(t.get_position()[0] for t in na) == [1, 3]
    assert "0.000" not in _texts(ax)  # a missing value is never shown as 0
    _close(fig)


def test_spread_leaves_missing_runs_out_of_the_mean_and_marks_an_empty_configuration():
    fig = spread_figure({"a": [0.2, None, 0.4], "b": [None, float("nan")]}, "page_ned")
    ax = fig.axes[0]
    bars = _bars(ax)
    assert len(bars) == 1 and bars[0].get_height() == pytest.approx(0.3)
    assert _bar_at(ax, 1) == []
    assert [t.get_position()[0] for t in ax.texts if t.get_text() == MISSING] == [1]
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in dots) == 2
    assert any("1 of 3 n/a" in t for t in _texts(ax))
    _close(fig)


def test_all_missing_says_so():
    fig = bars_figure({"a": {"page_ned": None}, "b": {"page_ned": None}}, "page_ned")
    ax = fig.axes[0]
    assert _bars(ax) == [] and NO_VALUES in _texts(ax)
    _close(fig)


# ---------------------------------------------------------------------------------------------- all zero
def test_an_all_zero_metric_is_annotated_and_its_axis_is_not_degenerate():
    for fig in (bars_figure({"a": {"repetition_rate": 0.0}, "b": {"repetition_rate": 0}}, "repetition_rate"),
                spread_figure({"a": [0.0, 0.0], "b": [0.0]}, "repetition_rate")):
        ax = fig.axes[0]
        assert ALL_ZERO in _texts(ax)
        lo, hi = ax.get_ylim()
        assert hi - lo >= 0.5
        _close(fig)
    fig = bars_figure({"a": {"page_ned": 0.0}, "b": {"page_ned": 0.2}}, "page_ned")
    assert ALL_ZERO not in _texts(fig.axes[0])
    _close(fig)


# ---------------------------------------------------------------------------------------------- layout
def _extents(fig, artists):
    renderer = fig.canvas.get_renderer()
    return [a.get_window_extent(renderer) for a in artists if a.get_text()]


def _inside(fig, box) -> bool:
    w, h = fig.canvas.get_width_height()
    return box.x0 >= -1 and box.y0 >= -1 and box.x1 <= w + 1 and box.y1 <= h + 1


LONG = {f"mask=causal_flow_variant_{i}, query_ratio=0.{i}5, seed={i}, extra_key=a_long_value_{i}":
        {"page_ned": 0.1 * i} for i in range(1, 7)}


def _labels_do_not_touch(fig, labels) -> None:
    """Upright labels: their boxes are disjoint. Rotated ones (all by the same angle): each is a strip of its
    unrotated height, and two parallel strips whose anchors are d px apart along x are d·sin(angle) apart."""
    angle = labels[0].get_rotation()
    if angle == 0:
        for a, b in itertools.combinations(_extents(fig, labels), 2):
            assert not a.overlaps(b), (a, b)
        return
    renderer = fig.canvas.get_renderer()
    heights = []
    for t in labels:
        t.set_rotation(0)
        heights.append(t.get_window_extent(renderer).height)
        t.set_rotation(angle)
    anchors = [t.get_transform().transform(t.get_position())[0] for t in labels]
    gap = min(b - a for a, b in zip(anchors, anchors[1:]))
    assert gap * math.sin(math.radians(angle)) > max(heights)


@pytest.mark.parametrize("make", [lambda: bars_figure(LONG, "page_ned"),
                                  lambda: spread_figure({k: [v["page_ned"]] for k, v in LONG.items()}, "page_ned"),
                                  lambda: bars_figure({"a" * 60: {"page_ned": 0.2}, "b" * 60: {"page_ned": 0.3}},
                                                      "page_ned"),
                                  lambda: bars_figure({"before": {"page_ned": 0.9}, "after": {"page_ned": 0.1}},
                                                      "page_ned")])
def test_long_run_labels_do_not_overlap_and_stay_inside_the_figure(make):
    fig = make()
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) == len(ax.get_xticks())
    _labels_do_not_touch(fig, labels)
    assert all(_inside(fig, b) for b in _extents(fig, labels))
    assert all(_inside(fig, b) for b in _extents(fig, [ax.title, ax.yaxis.label]))
    _close(fig)


def test_a_long_title_is_wrapped_inside_the_figure():
    title = "training loss of a sweep whose title goes on and on, far wider than the figure it is drawn on " * 2
    fig = loss_figure({"run": [(1, 2.0), (2, float("nan")), (3, 1.0)], "empty": [(1, None)]}, title=title)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert "\n" in ax.get_title() and "lower is better" in ax.get_title() + ax.get_ylabel()
    assert _inside(fig, _extents(fig, [ax.title])[0])
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [1, 3]  # the NaN loss is left out, not drawn as a value
    _close(fig)


def test_saving_functions_write_pngs(tmp_path):
    assert metric_bars({"a": {"vision_gain": 0.1}, "b": {}}, "vision_gain", tmp_path / "g.png").stat().st_size > 0
    assert metric_spread({"a": [0.1, None]}, "page_ned", tmp_path / "s.png").stat().st_size > 0
    assert loss_curves({"a": [(1, 1.0), (2, 0.5)]}, tmp_path / "l.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------- reading path
def _flow_model():
    from ocr2 import OCR2Config, OCR2Model

    torch.manual_seed(0)
    cfg = OCR2Config.from_preset("tiny")
    cfg.global_view_size, cfg.encoder.query_view_sizes = 256, (256,)
    return OCR2Model(cfg).eval()


def test_reading_path_plot_has_colour_bars_and_a_visible_path():
    from PIL import Image

    from eval.research.flow_plot import flow_figure

    fig = flow_figure(_flow_model(), Image.new("RGB", (300, 200), "white"), views="single:256")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "flow query index (reading order)" in labels and "attention weight" in labels
    bars = [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    assert len(bars) == 2
    path_axes = [ax for ax in fig.axes if "reading path" in ax.get_title()]
    assert len(path_axes) == 3  # 2 encoder layers + their mean
    n_queries = 16
    for ax in path_axes:
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(lines) == 1 and len(lines[0].get_segments()) == n_queries - 1  # query i -> query i + 1
        markers = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets()) == n_queries]
        assert len(markers) == 1
        colours = markers[0].get_array()
        assert list(colours) == list(range(n_queries))  # coloured by query index
        xs, ys = markers[0].get_offsets().T
        assert ((0 < xs) & (xs < 256) & (0 < ys) & (ys < 256)).all()  # on the 256² view
    assert not math.isnan(float(torch.tensor(path_axes[0].get_ylim()).sum()))
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_reading_path_uses_the_models_reading_recipe_unless_told(tmp_path):
    from PIL import Image

    from eval.research.flow_plot import flow_figure
    from ocr2.processing.reading import ReadingRecipe

    model = _flow_model()
    model.reading = ReadingRecipe(views="single:256")
    fig = flow_figure(model, Image.new("RGB", (300, 200), "white"))
    assert "single:256" in fig.get_suptitle()
    _close(fig)
    model.reading = ReadingRecipe(views="base")  # 1024² global view: the model has no table for it
    with pytest.raises(ValueError, match="no flow-query"):
        flow_figure(model, Image.new("RGB", (300, 200), "white"))
    fig = flow_figure(model, Image.new("RGB", (300, 200), "white"), views="single:256")
    assert "single:256" in fig.get_suptitle()
    _close(fig)

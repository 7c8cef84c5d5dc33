"""Glyph-grid pages (the demo's pages): one glyph per visual-token cell, ground truth in column-by-column order."""

import numpy as np
import pytest

from data_pipelines.synth.config import DegradeConfig, SynthConfig
from data_pipelines.synth.page import PageGenerator

GRID = dict(long_side=(256, 256), page_formats={"square": 1.0}, layouts={"glyph_grid": 1.0}, languages={"en": 1.0},
            fonts=("mono",), p_header=0.0, p_footer=0.0, p_page_number=0.0, p_color_background=0.0,
            p_paper_texture=0.0, degrade=DegradeConfig().disabled())


def _page(seed=0, **overrides):
    return PageGenerator(SynthConfig(**{**GRID, **overrides})).page(seed)


def _box(block):
    return tuple(int(v) for v in (block["poly"][0], block["poly"][1], block["poly"][4], block["poly"][5]))


def test_markdown_is_one_paragraph_per_line_of_random_glyphs_within_the_knobs():
    for seed in range(20):
        lines = _page(seed).markdown.split("\n\n")
        assert 2 <= len(lines) <= 4
        assert all(2 <= len(line) <= 4 and line.isalpha() and line.isupper() for line in lines), lines


def test_every_block_is_whole_cells_on_the_token_grid():
    for seed in range(10):
        for b in _page(seed).blocks:
            x0, y0, x1, y1 = _box(b)
            assert (x0 % 64, y0 % 64, x1 % 64, y1 % 64) == (0, 0, 0, 0)
            assert (x1 - x0) // 64 == len(b["text"]) and y1 - y0 == 64


def test_each_glyph_is_drawn_inside_its_own_cell():
    page = _page(3)
    ink = np.asarray(page.image.convert("L")) < 128
    covered = np.zeros_like(ink)
    for b in page.blocks:
        x0, y0, x1, y1 = _box(b)
        covered[y0:y1, x0:x1] = True
        for i in range(len(b["text"])):
            assert ink[y0:y1, x0 + 64 * i:x0 + 64 * (i + 1)].sum() > 20, (b["text"], i)
    assert not (ink & ~covered).any()  # no ink outside the cells the ground truth names


def test_text_columns_are_read_one_after_the_other():
    page = _page(1, long_side=(512, 512), grid_columns=(2, 2), grid_rows=(3, 3), grid_cols=(3, 3))
    x_by_order = [_box(b)[0] for b in sorted(page.blocks, key=lambda b: b["order"])]
    assert x_by_order == [0, 0, 0, 256, 256, 256]  # left column top to bottom, then the right one


def test_a_page_too_small_for_its_columns_is_an_error():
    with pytest.raises(ValueError, match="too few for 3 text column"):
        _page(0, long_side=(128, 128), grid_columns=(3, 3))


@pytest.mark.parametrize("knob", ["grid_rows", "grid_cols", "grid_columns"])
def test_bad_grid_ranges_are_named(knob):
    with pytest.raises(ValueError, match=f"SynthConfig.{knob} must satisfy"):
        SynthConfig(**{knob: (3, 2)})

"""Glyph-column pages (data_pipelines/synth/glyph_columns.py): glyph-grid density, reading order far from raster."""

import numpy as np
import pytest

from data_pipelines.build_synth import build_synth
from data_pipelines.synth.config import SynthConfig
from data_pipelines.synth.glyph_columns import columns_that_fit
from data_pipelines.synth.page import PageGenerator
from eval.research.reading_order_pages import layout_type
from train_harness import ROOT

CONFIG = SynthConfig.load(ROOT / "configs/synth/order_varied_384.json")  # 6 x 6 cells: room for every element
# 512² = 8 x 8 cells: four one-cell columns one cell apart (7 cells) beside a one-cell sidebar, every element on.
WIDE = SynthConfig.from_dict({**CONFIG.to_dict(), "long_side": (512, 512), "columns_count": (4, 4),
                              "columns_fewer": False, "columns_p_heading": 1.0, "columns_p_figure": 1.0,
                              "columns_p_sidebar": 1.0})
CELL = 64


def _pages(cfg, seeds=range(20)):
    gen = PageGenerator(cfg)
    return [gen.page(seed) for seed in seeds]


def _box(block):
    return tuple(int(v) for v in (block["poly"][0], block["poly"][1], block["poly"][4], block["poly"][5]))


def _ordered(page):
    return sorted((b for b in page.blocks if b["order"] is not None), key=lambda b: b["order"])


def _kendall_tau(a, b):
    """Kendall's tau of two rankings without ties."""
    n, score = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            score += 1 if (a[i] - a[j]) * (b[i] - b[j]) > 0 else -1
    return score / (n * (n - 1) / 2)


def test_reading_order_is_far_from_raster_order():
    taus = []
    for page in _pages(CONFIG):
        assert page.rendering["columns"] >= 2
        text = [b for b in page.blocks if b["category_type"] == "text_block"]
        raster = sorted(range(len(text)), key=lambda i: (_box(text[i])[1], _box(text[i])[0]))  # top-left, row-major
        taus.append(_kendall_tau([b["order"] for b in text], [raster.index(i) for i in range(len(text))]))
    assert np.mean(taus) < 0.8, np.mean(taus)  # measured 0.43 at the config's 384² pages


def test_a_heading_is_read_first_across_the_text_columns_on_about_half_the_pages():
    pages = _pages(CONFIG, range(60))
    with_heading = [p for p in pages if p.rendering["heading"]]
    assert 15 <= len(with_heading) <= 45  # columns_p_heading 0.5
    for page in pages:
        titles = [b for b in page.blocks if b["category_type"] == "title"]
        if not page.rendering["heading"]:
            assert not titles
            continue
        first, cells = _ordered(page)[0], page.rendering["column_cells"]
        assert titles == [first]
        assert _box(first) == (cells[0][0] * CELL, 0, cells[-1][1] * CELL, CELL)  # the top row, all the columns


def test_a_figure_interrupts_one_column_between_two_of_its_lines():
    pages = _pages(CONFIG, range(60))
    assert 8 <= sum(p.rendering["figure"] is not None for p in pages) <= 35  # columns_p_figure 0.33
    for page in pages + _pages(WIDE, range(5)):
        figures = [b for b in page.blocks if b["category_type"] == "figure"]
        assert len(figures) == (page.rendering["figure"] is not None)
        if not figures:
            continue
        ordered = _ordered(page)
        k = ordered.index(figures[0])
        above, figure, below = (_box(b) for b in ordered[k - 1:k + 2])
        assert ordered[k - 1]["category_type"] == ordered[k + 1]["category_type"] == "text_block"
        assert above[0] == figure[0] == below[0]  # one column
        assert above[3] == figure[1] and figure[3] == below[1]  # the line above, the figure, the line below
        assert figures[0]["text"] == ""


def test_a_sidebar_is_shaded_and_read_after_the_text_columns():
    for page in _pages(WIDE, range(6)):
        r = page.rendering
        assert r["columns"] == 4 and r["sidebar"] is not None and layout_type(page.blocks) == "5-column"
        s0, s1 = r["sidebar"]["cells"]
        ordered = _ordered(page)
        last = [_box(b) for b in ordered[-8:]]  # one line on each of the page's 8 rows
        assert [(x0, y0) for x0, y0, _, _ in last] == [(s0 * CELL, row * CELL) for row in range(8)]
        assert all(_box(b)[0] < s0 * CELL or _box(b)[0] >= s1 * CELL for b in ordered[:-8])
        grey = np.asarray(page.image.convert("L")).astype(float)
        panel = grey[:, s0 * CELL:s1 * CELL]
        paper = grey[:, 2 * CELL:5 * CELL]  # text columns whichever side the sidebar is on
        assert np.median(panel) < np.median(paper) - 10  # the panel's paper is visibly darker
    assert {p.rendering["sidebar"]["side"] for p in _pages(WIDE, range(12))} == {"left", "right"}


def test_page_markdown_is_the_title_and_text_blocks_in_order():
    for page in _pages(CONFIG) + _pages(WIDE, range(3)):
        text = [b for b in _ordered(page) if b["category_type"] != "figure"]
        assert {b["category_type"] for b in text} <= {"title", "text_block"}
        expected = "\n\n".join(("# " if b["category_type"] == "title" else "") + b["text"] for b in text)
        assert page.markdown == expected


def test_glyphs_stay_one_per_cell_and_on_the_page():
    unseen = CONFIG.for_split("validation_unseen")  # the largest sizes and offsets
    for page in _pages(unseen) + _pages(WIDE, range(3)):
        w, h = page.image.size
        background, ink = page.rendering["background"][0], page.rendering["ink"][0]
        grey = np.asarray(page.image.convert("L"))
        dark = grey < (background + ink) / 2  # glyph ink; the sidebar panel is lighter than this
        for b in page.blocks:
            if b["category_type"] == "figure":
                continue
            x0, y0, x1, y1 = _box(b)
            assert (x0 % CELL, y0 % CELL, x1 % CELL, y1 % CELL) == (0, 0, 0, 0) and 0 <= x0 and x1 <= w
            assert (x1 - x0) // CELL == len(b["text"]) and y1 - y0 == CELL and y1 <= h
            for i in range(len(b["text"])):
                assert dark[y0:y1, x0 + CELL * i:x0 + CELL * (i + 1)].sum() > 20, (page.seed, b["text"], i)
        assert not (dark[0].any() or dark[-1].any() or dark[:, 0].any() or dark[:, -1].any()), page.seed


def test_the_config_renders_a_dataset_with_its_held_out_split(tmp_path):
    assert CONFIG.layouts == {"glyph_columns": 1.0} and CONFIG.long_side == (384, 384)
    info = build_synth(tmp_path / "ds", {"train": 2, "validation": 2}, CONFIG)
    assert info["splits"] == {"train": 2, "validation": 2, "validation_unseen": 2}


@pytest.mark.parametrize("name", ["order_columns", "order_varied"])
def test_the_ablation_configs_render_heading_figure_and_sidebar_pages_on_4x4_cells(tmp_path, name):
    # the order ablation's pages, 256² (the demo reader's 16 visual tokens): glyph-column pages alone
    # (order_columns, the tokenizer's pretraining pages) and mixed half and half with one-column pages (order_varied)
    small = SynthConfig.load(ROOT / f"configs/synth/{name}.json")
    assert small.long_side == (256, 256)
    pages = [PageGenerator(small).page(seed) for seed in range(40)]
    kinds = {b["category_type"] for p in pages for b in p.blocks}
    assert kinds == {"title", "text_block", "figure"}
    assert any(p.rendering.get("sidebar") for p in pages)
    info = build_synth(tmp_path / "ds", {"train": 2, "validation": 2}, small)
    assert info["splits"] == {"train": 2, "validation": 2, "validation_unseen": 2}


def test_a_page_too_small_for_an_element_is_a_named_error():
    small = {**CONFIG.to_dict(), "long_side": (256, 256)}  # 4 x 4 cells
    with pytest.raises(ValueError, match=r"256x256 page has 4x4 cells of 64 px, too few for 3 text column"):
        SynthConfig.from_dict({**small, "columns_count": (3, 3), "columns_p_figure": 0.0,
                               "columns_p_sidebar": 0.0})
    with pytest.raises(ValueError, match=r"256x256 page has 4x4 cells .* a 2-row figure with a line above and below"):
        SynthConfig.from_dict({**small, "columns_count": (2, 2), "columns_p_sidebar": 0.0})
    with pytest.raises(ValueError, match=r"384x384 page has 6x6 cells .* 2 text column.* beside a 4-cell sidebar"):
        columns_that_fit(384, 384, CONFIG, wanted=3, sidebar_width=4)


def test_fewer_columns_are_drawn_only_when_the_config_allows_it():
    assert columns_that_fit(384, 384, CONFIG, wanted=4) == 3  # columns_fewer: the most that fit, 3 >= lo 2
    strict = SynthConfig.from_dict({**CONFIG.to_dict(), "columns_fewer": False, "columns_count": (2, 2)})
    with pytest.raises(ValueError, match="too few for 4 text column"):
        columns_that_fit(384, 384, strict, wanted=4)

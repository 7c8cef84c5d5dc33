"""Glyph-column pages: glyph-grid density (one glyph per visual-token cell) with a reading order far from raster order.

Why such pages exist: reading-order studies (eval/research/reading_order*.py) ask whether a reader follows the
page's reading order or just walks the visual tokens row by row. On a glyph-grid page of one text column the two
orders coincide, and prose pages with several columns are too dense for the toy reader a CPU can train from
scratch (a token holds several lines of small text; docs/demo.md). A glyph-column page keeps the glyph grid's
density, one random glyph per `grid_cell` cell drawn with the same nuisances (GlyphPen in glyph_grid.py: face,
size, whole-grid shift, per-glyph jitter, ink and paper shades from SynthConfig.grid_*), and lays the lines out so
that reading order and raster order part ways:

- a heading (probability columns_p_heading): one line across the text columns in the top row, glyphs in every
  cell from the left edge of the first column to the right edge of the last (over the column gaps too);
  category `title`, read first;
- 2-4 text columns (columns_count), separated by grid_column_gap empty cells, widths as equal as the cells allow
  (a spare cell widens the leftmost columns); every row below the heading holds one line of
  min(column width, grid_cols draw) glyphs (a `text_block`), so columns run to the foot of the page; read column
  by column, top to bottom (grid_rows is not used: the columns are full);
- a figure (columns_p_figure) interrupting one column: a framed box, hatched, cross-hatched or filled,
  columns_figure_rows cells tall and the column's width, with at least one line of that column above and one
  below it; category `figure`, placed (with an `order`) between those lines; it has no text, so the page markdown
  (ocr2/data/markdown.py, after OmniDocBench's own markdown) leaves it out: the markdown is exactly the title and
  text blocks in order;
- a sidebar (columns_p_sidebar): a columns_sidebar_width-cell column at the left or right page edge (even odds),
  columns_sidebar_gap empty cells from the text columns, on a shaded panel (the paper shade a quarter of the way
  to the ink) running the page's full height, one line per row; read after the text columns.

Blocks are recorded in reading order (`order` = placement index, canvas.add_block). The synthetic dataset schema
has no page attribute for the layout (ocr2.data.schema.make_sample), so eval/research/reading_order_pages.py's
layout_type infers it from the blocks: `k-column` with k = text columns + 1 with a sidebar (the page's
`rendering["layout"]` names the same label).

Fitting (`columns_that_fit`), on a page of `across` x `down` cells: the heading takes the top row; a figure needs
figure rows + 2 rows below the heading; the text columns share the width the sidebar (and its gap) leaves, each at
least one cell wide with grid_column_gap cells between them. An element that cannot fit is a ValueError naming the
page size and its cells. When the drawn column count does not fit, columns_fewer=True uses the most that do, but
never fewer than columns_count's lower bound (that bound is the config's promise); columns_fewer=False makes it a
ValueError. SynthConfig checks the worst case of its smallest page of each format when it is made, so a config
that could fail mid-build fails at load instead.

configs/synth/order_varied.json: 384² pages, 6 x 6 cells, 2-3 columns. With gap 1 two columns are 2 cells wide,
three are 2, 1, 1; a sidebar fits there only because its shading, not an empty cell, separates it (gap 0): one
sidebar cell leaves 5 for the columns, i.e. 2 + 2 or 1 + 1 + 1. A 512² page (8 cells) holds 4 one-cell columns
beside a one-cell sidebar the same way.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from data_pipelines.synth.canvas import Canvas
from data_pipelines.synth.glyph_grid import GlyphPen, grid_shape
from data_pipelines.synth.style import PageStyle

FIGURE_KINDS = ("hatched", "crossed", "filled")
SIDEBAR_SHADE = 0.25  # the sidebar panel's paper: this fraction of the way from the paper shade to the ink


def _needs(heading: bool, figure_rows: int) -> int:
    """Rows a page needs: the heading's, and a figure's with one line above and one below it (else one line)."""
    return int(heading) + (figure_rows + 2 if figure_rows else 1)


def _most_columns(width: int, gap: int) -> int:
    """The most text columns of at least one cell, `gap` cells apart, in `width` cells."""
    return max(0, (width + gap) // (1 + gap))


def columns_that_fit(width: int, height: int, cfg, wanted: int, heading: bool = False, figure_rows: int = 0,
                     sidebar_width: int = 0) -> int:
    """The number of text columns a width x height page draws when `wanted` were drawn, with a heading, a figure of
    `figure_rows` rows and a sidebar of `sidebar_width` cells (0: none); ValueError when they cannot fit (module
    doc: the rule)."""
    cell = cfg.grid_cell
    across, down = grid_shape(width, height, cfg)
    where = f"glyph columns: a {width}x{height} page has {across}x{down} cells of {cell} px"
    rows = _needs(heading, figure_rows)
    if down < rows:
        parts = (["a heading row"] if heading else []) + \
                ([f"a {figure_rows}-row figure with a line above and below it"] if figure_rows else ["a line"])
        raise ValueError(f"{where}, too few for {' and '.join(parts)} ({rows} rows)")
    gap = cfg.grid_column_gap
    main = across - (sidebar_width + cfg.columns_sidebar_gap if sidebar_width else 0)
    most = _most_columns(main, gap)
    if wanted <= most:
        return wanted
    lo = cfg.columns_count[0]
    if cfg.columns_fewer and most >= lo:
        return most
    need = min(wanted, lo) if cfg.columns_fewer else wanted
    beside = f" beside a {sidebar_width}-cell sidebar {cfg.columns_sidebar_gap} cell(s) away" if sidebar_width else ""
    raise ValueError(f"{where}, too few for {need} text column(s) {gap} cell(s) apart{beside} "
                     f"({need + gap * (need - 1)} of {main} cells across)")


def check_fits(width: int, height: int, cfg) -> None:
    """ValueError when some page of this size could ask for more than fits (every element at once, at its largest)."""
    columns_that_fit(width, height, cfg, cfg.columns_count[1], cfg.columns_p_heading > 0,
                     cfg.columns_figure_rows[1] if cfg.columns_p_figure > 0 else 0,
                     cfg.columns_sidebar_width[1] if cfg.columns_p_sidebar > 0 else 0)


def _blend(a: tuple[int, ...], b: tuple[int, ...], t: float) -> tuple[int, ...]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))


def _draw_figure(canvas: Canvas, box: tuple[int, int, int, int], kind: str, style: PageStyle, cell: int) -> None:
    """A picture no reader would transcribe: a framed box, hatched, cross-hatched or filled, inset in its cells."""
    inset = max(2, cell // 8)
    x0, y0, x1, y1 = box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset
    w, h = x1 - x0, y1 - y0
    if kind == "filled":
        canvas.draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=_blend(style.background, style.ink, 0.5))
    else:
        mask = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(mask)
        step = max(4, cell // 6)
        for k in range(-h, w + h, step):
            d.line([(k, 0), (k + h, h)], fill=255, width=1)
            if kind == "crossed":
                d.line([(k, h), (k + h, 0)], fill=255, width=1)
        canvas.image.paste(style.ink, (x0, y0, x1, y1), mask)
    canvas.draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=style.ink, width=2)


def draw_glyph_columns(canvas: Canvas, rng: random.Random, style: PageStyle, cfg) -> dict:
    """Draw one glyph-column page into `canvas` (cfg: SynthConfig) and record its blocks in reading order.

    Returns GlyphPen's rendering (face, size, shift, offsets, shades) and the page's elements: `layout`
    (`k-column`), `columns` (count), `column_cells` ([x0, x1) cells of each text column), `heading` (bool),
    `figure` (None or its column, rows [r0, r1) and kind), `sidebar` (None or its side and [x0, x1) cells).
    """
    cell = cfg.grid_cell
    across, down = grid_shape(canvas.width, canvas.height, cfg)
    heading = rng.random() < cfg.columns_p_heading
    figure_rows = rng.randint(*cfg.columns_figure_rows) if rng.random() < cfg.columns_p_figure else 0
    sidebar_width = rng.randint(*cfg.columns_sidebar_width) if rng.random() < cfg.columns_p_sidebar else 0
    wanted = rng.randint(*cfg.columns_count)
    columns = columns_that_fit(canvas.width, canvas.height, cfg, wanted, heading, figure_rows, sidebar_width)
    gap = cfg.grid_column_gap

    sidebar = None
    main0, main1 = 0, across
    if sidebar_width:
        if rng.random() < 0.5:
            sidebar = {"side": "left", "cells": (0, sidebar_width)}
            main0 = sidebar_width + cfg.columns_sidebar_gap
        else:
            sidebar = {"side": "right", "cells": (across - sidebar_width, across)}
            main1 = across - sidebar_width - cfg.columns_sidebar_gap
    base, spare = divmod(main1 - main0 - gap * (columns - 1), columns)
    column_cells, x = [], main0
    for c in range(columns):
        w = base + (c < spare)
        column_cells.append((x, x + w))
        x += w + gap
    top = int(heading)
    figure = None
    if figure_rows:
        r0 = rng.randint(top + 1, down - figure_rows - 1)  # a line of its column above it and one below
        figure = {"column": rng.randrange(columns), "rows": (r0, r0 + figure_rows), "kind": rng.choice(FIGURE_KINDS)}

    # Pictures first, glyphs over them: a glyph's jitter may carry its ink a little into a neighbouring cell.
    if sidebar:
        s0, s1 = sidebar["cells"]
        canvas.draw.rectangle((s0 * cell, 0, s1 * cell - 1, down * cell - 1),
                              fill=_blend(style.background, style.ink, SIDEBAR_SHADE))
    if figure:
        (f0, f1), (r0, r1) = column_cells[figure["column"]], figure["rows"]
        figure_box = (f0 * cell, r0 * cell, f1 * cell, r1 * cell)
        _draw_figure(canvas, figure_box, figure["kind"], style, cell)

    pen = GlyphPen(canvas, rng, style, cfg)

    def line(x0: int, x1: int, row: int, category: str = "text_block", n: int | None = None) -> None:
        n = min(x1 - x0, rng.randint(*cfg.grid_cols)) if n is None else n
        text = pen.line(n, x0, row)
        canvas.add_block(category, (x0 * cell, row * cell, (x0 + n) * cell, (row + 1) * cell), text)

    if heading:
        x0, x1 = column_cells[0][0], column_cells[-1][1]
        line(x0, x1, 0, "title", n=x1 - x0)
    for c, (x0, x1) in enumerate(column_cells):
        for row in range(top, down):
            if figure and figure["column"] == c and figure["rows"][0] <= row < figure["rows"][1]:
                if row == figure["rows"][0]:
                    canvas.add_block("figure", figure_box)
                continue
            line(x0, x1, row)
    if sidebar:
        for row in range(down):
            line(*sidebar["cells"], row)
    return {**pen.rendering(), "layout": f"{columns + bool(sidebar)}-column", "columns": columns,
            "column_cells": column_cells, "heading": heading, "figure": figure, "sidebar": sidebar}

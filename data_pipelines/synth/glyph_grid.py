"""Glyph-grid pages: one glyph per visual token, the simplest page a from-scratch model can learn to read on a CPU.

The vision tokenizer turns every 16 x 16 patch into a feature and the 16x compressor merges 4 x 4 of them into one
visual token, so each token of the global view covers a 64 x 64 pixel cell. A glyph-grid page draws one random
glyph centred in each cell it uses (a page of the global view's size, e.g. 256², so cells and tokens coincide),
in `grid_rows` lines of `grid_cols` glyphs, optionally in several text columns read one after the other.

Why such pages exist: on prose pages a token holds several lines of small text, and a model of a few hundred
thousand parameters trained from scratch does not learn to read them in the minutes a CPU has (docs/demo.md).
With one glyph per token the encoder's queries and the decoder both need only a fixed offset to find the next
glyph, and the tiny model learns to read within a few thousand pages. Random glyphs leave nothing to guess: the
text must be read from the page.

What a reader should ignore varies within the config's ranges (SynthConfig.grid_*: face, size, a whole-grid shift
and each glyph's jitter, ink and paper shades), so a model that reads these pages has to read glyphs, not
memorise one drawing of each letter; configs/synth/demo_varied.json also holds out a split drawn outside them.
GlyphPen draws glyphs with these nuisances for every glyph layout (glyph_columns.py: the same density with a
reading order far from raster order).

Ground truth: every line of a text column is one `text_block` (so the page markdown has one paragraph per line),
in reading order: column by column, top to bottom.
"""

from __future__ import annotations

import dataclasses
import random

from data_pipelines.synth.canvas import Canvas
from data_pipelines.synth.fonts import load_font
from data_pipelines.synth.glyph_fonts import face_path
from data_pipelines.synth.style import PageStyle


EDGE = 2  # px of paper kept between a glyph's ink and the page edge (blur spreads ink by about a pixel)


def grid_shape(width: int, height: int, cfg) -> tuple[int, int]:
    """(cells across, cells down) that fit on a width x height page."""
    return width // cfg.grid_cell, height // cfg.grid_cell


def glyph_grid_style(rng: random.Random, style: PageStyle, cfg) -> PageStyle:
    """The page style with ink and paper shades drawn from cfg.grid_ink / grid_background (when set)."""
    changes = {}
    for name, attr in (("grid_ink", "ink"), ("grid_background", "background")):
        shade = getattr(cfg, name)
        if shade is not None:
            grey = rng.randint(*shade)
            changes[attr] = (grey, grey, grey)
    return dataclasses.replace(style, **changes) if changes else style


def _glyph_size(rng: random.Random, cfg) -> int:
    """Font size in px, uniform over the union of the size ranges (a range is picked by its width)."""
    ranges = cfg.glyph_size_ranges()
    lo, hi = rng.choices(ranges, weights=[max(b - a, 1e-6) for a, b in ranges])[0]
    return max(6, round(cfg.grid_cell * rng.uniform(lo, hi)))


def _offset(rng: random.Random, limit: int) -> int:
    return rng.randint(-limit, limit) if limit else 0


class GlyphPen:
    """Draws glyphs one per cell with the page's nuisances: one face, size and whole-grid shift per page (drawn when
    the pen is made), a jitter per glyph (drawn as each glyph is written), ink kept EDGE px inside the page.

    Shared by every glyph layout (glyph_grid, glyph_columns), so their glyphs vary the same way; `rendering()` is
    what was drawn, for tests and notebooks to check against the config's ranges.
    """

    def __init__(self, canvas: Canvas, rng: random.Random, style: PageStyle, cfg):
        self.canvas, self.rng, self.ink, self.background, self.cfg = canvas, rng, style.ink, style.background, cfg
        cell = self.cell = cfg.grid_cell
        self.plain = cfg.grid_plain > 0 and rng.random() < cfg.grid_plain
        if self.plain:  # an anchor page: the first face, the middle of the size ranges, every glyph centred
            self.face = cfg.grid_fonts[0] if cfg.grid_fonts else None
            sizes = [v for r in cfg.glyph_size_ranges() for v in r]
            self.size = max(6, round(cell * (min(sizes) + max(sizes)) / 2))
        else:
            self.face = rng.choice(cfg.grid_fonts) if cfg.grid_fonts else None
            self.size = _glyph_size(rng, cfg)
        self.font = load_font(face_path(self.face) if self.face else style.body.path("regular"), self.size)
        shift_limit, self.jitter = (0, 0) if self.plain else (round(cell * cfg.grid_shift),
                                                               round(cell * cfg.grid_jitter))
        self.shift = (_offset(rng, shift_limit), _offset(rng, shift_limit))
        self.offsets: list[tuple[int, int]] = []

    def glyph(self, ch: str, col: int, row: int) -> None:
        """Draw `ch` centred in cell (col, row), moved by the page's shift and its own jitter."""
        cell, canvas, rng = self.cell, self.canvas, self.rng
        cx, cy = col * cell + cell // 2, row * cell + cell // 2
        dx, dy = self.shift[0] + _offset(rng, self.jitter), self.shift[1] + _offset(rng, self.jitter)
        # A glyph pushed over the page edge would be cut: keep its ink EDGE px inside the page.
        left, top, right, bottom = self.font.getbbox(ch, anchor="mm")
        dx = min(max(dx, EDGE - (cx + left)), canvas.width - EDGE - cx - right)
        dy = min(max(dy, EDGE - (cy + top)), canvas.height - EDGE - cy - bottom)
        canvas.draw.text((cx + dx, cy + dy), ch, font=self.font, fill=self.ink, anchor="mm")
        self.offsets.append((dx, dy))

    def line(self, n: int, col: int, row: int) -> str:
        """Draw a line of `n` random glyphs of cfg.grid_alphabet from cell (col, row) rightwards; returns its text."""
        text = "".join(self.rng.choice(self.cfg.grid_alphabet) for _ in range(n))
        for i, ch in enumerate(text):
            self.glyph(ch, col + i, row)
        return text

    def rendering(self) -> dict:
        return {"plain": self.plain, "face": self.face, "size": self.size, "shift": self.shift,
                "offsets": self.offsets, "ink": self.ink, "background": self.background}


def draw_glyph_grid(canvas: Canvas, rng: random.Random, style: PageStyle, cfg) -> dict:
    """Draw one glyph-grid page into `canvas` (cfg: SynthConfig) and record its lines as blocks in reading order.

    Returns what was drawn beyond the text (face, size, grid shift, each glyph's offset from its cell centre), so
    tests and notebooks can check the nuisances against their ranges.
    """
    cell = cfg.grid_cell
    across, down = grid_shape(canvas.width, canvas.height, cfg)
    columns = rng.randint(*cfg.grid_columns)
    gap = cfg.grid_column_gap
    per_column = (across - gap * (columns - 1)) // columns  # cells a line of one text column may use
    if per_column < 1 or down < 1:
        raise ValueError(f"glyph grid: a {canvas.width}x{canvas.height} page has {across}x{down} cells of "
                         f"{cell} px, too few for {columns} text column(s) {gap} cell(s) apart")
    pen = GlyphPen(canvas, rng, style, cfg)
    for c in range(columns):
        x0 = c * (per_column + gap)
        rows = min(down, rng.randint(*cfg.grid_rows))
        for r in range(rows):
            n = min(per_column, rng.randint(*cfg.grid_cols))
            line = pen.line(n, x0, r)
            canvas.add_block("text_block", (x0 * cell, r * cell, (x0 + n) * cell, (r + 1) * cell), line)
    return pen.rendering()

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

Ground truth: every line of a text column is one `text_block` (so the page markdown has one paragraph per line),
in reading order: column by column, top to bottom.
"""

from __future__ import annotations

import random

from data_pipelines.synth.canvas import Canvas
from data_pipelines.synth.fonts import load_font
from data_pipelines.synth.style import PageStyle


def grid_shape(width: int, height: int, cfg) -> tuple[int, int]:
    """(cells across, cells down) that fit on a width x height page."""
    return width // cfg.grid_cell, height // cfg.grid_cell


def draw_glyph_grid(canvas: Canvas, rng: random.Random, style: PageStyle, cfg) -> None:
    """Draw one glyph-grid page into `canvas` (cfg: SynthConfig) and record its lines as blocks in reading order."""
    cell = cfg.grid_cell
    across, down = grid_shape(canvas.width, canvas.height, cfg)
    columns = rng.randint(*cfg.grid_columns)
    gap = cfg.grid_column_gap
    per_column = (across - gap * (columns - 1)) // columns  # cells a line of one text column may use
    if per_column < 1 or down < 1:
        raise ValueError(f"glyph grid: a {canvas.width}x{canvas.height} page has {across}x{down} cells of "
                         f"{cell} px, too few for {columns} text column(s) {gap} cell(s) apart")
    font = load_font(style.body.path("regular"), max(6, round(cell * rng.uniform(*cfg.grid_glyph_size))))
    jitter = round(cell * cfg.grid_jitter)
    for c in range(columns):
        x0 = c * (per_column + gap)
        rows = min(down, rng.randint(*cfg.grid_rows))
        for r in range(rows):
            n = min(per_column, rng.randint(*cfg.grid_cols))
            line = "".join(rng.choice(cfg.grid_alphabet) for _ in range(n))
            for i, ch in enumerate(line):
                cx = (x0 + i) * cell + cell // 2 + rng.randint(-jitter, jitter)
                cy = r * cell + cell // 2 + rng.randint(-jitter, jitter)
                canvas.draw.text((cx, cy), ch, font=font, fill=style.ink, anchor="mm")
            canvas.add_block("text_block", (x0 * cell, r * cell, (x0 + n) * cell, (r + 1) * cell), line)

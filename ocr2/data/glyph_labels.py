"""Per-visual-token glyph labels of a page whose glyphs sit one per visual-token cell (the glyph-grid pages).

The vision tokenizer's 16x compressor gives one visual token per `view / side` px cell of the global view (64 px
at the micro model's 256² view). On glyph-grid pages (data_pipelines/synth/glyph_grid.py) every line of text is a
block one cell tall whose glyphs fill consecutive cells, one each: so the character under each visual token is
known from the page's blocks alone, and the tokenizer can be pretrained to recognise it before any reader is trained
on top (train/tokenizer_pretrain.py; eval/research/glyph_probe.py scores it per rendering condition).

Labels: 0 = no glyph in the cell; otherwise 1 + the character's byte value (a single-byte UTF-8 character; the
pages' alphabets are ASCII capitals). A block that is not one cell tall or whose text length is not its width in
cells is not a glyph-grid line; the page is refused with a BadSample naming it (the run skips and counts it).
"""

from __future__ import annotations

import torch

from ocr2.data.skips import BadSample
from ocr2.processing.views import ViewRecipe, view_transform

NUM_CLASSES = 257  # blank + one per byte
CELL_TOLERANCE = 0.25  # of a cell: a block edge this close to a cell edge is on it (view resize rounding)


def _cells(lo: float, hi: float, cell: float, what: str) -> tuple[int, int]:
    """The cell range [a, b) a block edge pair covers, or ValueError when an edge is off the cell grid."""
    a, b = lo / cell, hi / cell
    ra, rb = round(a), round(b)
    if abs(a - ra) > CELL_TOLERANCE or abs(b - rb) > CELL_TOLERANCE or rb <= ra:
        raise ValueError(f"its {what} {lo:.1f}-{hi:.1f} px is not on the {cell:.1f} px cell grid")
    return ra, rb


def glyph_labels(blocks: list[dict], image_size: tuple[int, int], recipe: ViewRecipe, side: int,
                 sample_id: str = "?") -> torch.Tensor:
    """(side*side,) labels of the global view's visual tokens in raster order (module doc)."""
    sx, sy, ox, oy = view_transform(recipe, image_size)
    cell = recipe.global_size / side
    labels = torch.zeros(side * side, dtype=torch.long)
    for block in blocks:
        text = block.get("text") or ""
        poly = block.get("poly") or []
        if not text or len(poly) < 8:
            continue  # a figure or an empty block: no glyph cells
        xs, ys = poly[0::2], poly[1::2]
        try:
            c0, c1 = _cells(min(xs) * sx + ox, max(xs) * sx + ox, cell, "width")
            r0, r1 = _cells(min(ys) * sy + oy, max(ys) * sy + oy, cell, "height")
        except ValueError as e:
            raise BadSample("not_glyph_grid", f"sample {sample_id}: block {text[:20]!r}: {e}") from None
        codes = text.encode("utf-8")
        if r1 - r0 != 1 or c1 - c0 != len(codes) or len(codes) != len(text):
            raise BadSample("not_glyph_grid", f"sample {sample_id}: block {text[:20]!r} spans {c1 - c0}x{r1 - r0} "
                                              f"cells for {len(text)} characters: not one glyph per cell")
        if c1 > side or r1 > side or c0 < 0 or r0 < 0:
            raise BadSample("not_glyph_grid", f"sample {sample_id}: block {text[:20]!r} lies off the "
                                              f"{side}x{side} token grid")
        for i, code in enumerate(codes):
            labels[r0 * side + c0 + i] = 1 + code
    return labels


def cell_hits(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, n) predicted and true labels -> per page: glyph cells named right, glyph cells, empty cells called empty,
    empty cells. One definition of "glyph accuracy" for the pretraining's scores and the probe's."""
    on = labels > 0
    return {"glyph_hits": ((predicted == labels) & on).sum(1), "glyph_cells": on.sum(1),
            "empty_hits": ((predicted == 0) & ~on).sum(1), "empty_cells": (~on).sum(1)}

"""Rendering text to page images, for the optical context memory (eval/research/memory.py).

`PageRenderer`: turns written as "Role: text" in DejaVu Sans on square white pages (the memory's default; its
module docstring gives the reasons for the size and font). `GlyphGridRenderer`: the toy-scale variant, one glyph
per cell in a monospace font, matching the glyph-grid training pages (data_pipelines/synth/glyph_grid.py) so a
tiny model that reads those pages can read turns back.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

__all__ = ["DEJAVU_SANS", "GlyphGridRenderer", "PageLayout", "PageRenderer"]

DEJAVU_SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@dataclass(frozen=True)
class PageLayout:
    lines: tuple[str, ...]
    turns: tuple[int, ...]  # indices (into the caller's turn list) of the turns on this page

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class PageRenderer:
    """Square text pages: black DejaVu Sans on white, word-wrapped, turns starting on a new line."""

    page_size: int = 1280
    font_size: int = 22
    margin: int = 48
    line_spacing: float = 1.25
    font_path: str | None = None  # default: DejaVu Sans, else Pillow's default font

    @cached_property
    def font(self) -> ImageFont.ImageFont:
        for path in ([self.font_path] if self.font_path else []) + [DEJAVU_SANS, "DejaVuSans.ttf"]:
            try:
                return ImageFont.truetype(path, self.font_size)
            except OSError:
                continue
        try:
            return ImageFont.load_default(size=self.font_size)
        except TypeError:  # Pillow < 10.1: bitmap font, fixed size
            return ImageFont.load_default()

    @property
    def line_height(self) -> int:
        return max(1, round(self.font_size * self.line_spacing))

    @property
    def text_width(self) -> int:
        return self.page_size - 2 * self.margin

    @property
    def lines_per_page(self) -> int:
        n = (self.page_size - 2 * self.margin) // self.line_height
        if n < 1:
            raise ValueError(f"no line fits a {self.page_size}px page with {self.margin}px margins")
        return n

    def _width(self, s: str) -> float:
        return self.font.getlength(s)

    def wrap(self, text: str) -> list[str]:
        """Greedy word wrap to the text width; over-long words are cut by characters; '\\n' starts a line."""
        lines: list[str] = []
        width = self.text_width
        for para in text.split("\n"):
            line = ""
            for word in para.split():
                candidate = f"{line} {word}" if line else word
                if self._width(candidate) <= width:
                    line = candidate
                    continue
                if line:
                    lines.append(line)
                line = ""
                while self._width(word) > width:  # hard break
                    cut = len(word)
                    while cut > 1 and self._width(word[:cut]) > width:
                        cut -= 1
                    lines.append(word[:cut])
                    word = word[cut:]
                line = word
            lines.append(line)
        return lines

    def layout(self, texts: Sequence[str], turn_ids: Sequence[int] | None = None) -> list[PageLayout]:
        """Pack texts (one per turn, in reading order) onto as few pages as possible."""
        turn_ids = list(range(len(texts))) if turn_ids is None else list(turn_ids)
        per_page = self.lines_per_page
        pages: list[PageLayout] = []
        lines: list[str] = []
        on_page: list[int] = []
        for tid, text in zip(turn_ids, texts):
            for line in self.wrap(text):
                if len(lines) == per_page:
                    pages.append(PageLayout(tuple(lines), tuple(on_page)))
                    lines, on_page = [], []
                lines.append(line)
                if not on_page or on_page[-1] != tid:
                    on_page.append(tid)
        if lines:
            pages.append(PageLayout(tuple(lines), tuple(on_page)))
        return pages

    def render(self, page: PageLayout | Sequence[str]) -> Image.Image:
        lines = page.lines if isinstance(page, PageLayout) else page
        image = Image.new("RGB", (self.page_size, self.page_size), "white")
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(lines):
            draw.text((self.margin, self.margin + i * self.line_height), line, fill="black", font=self.font)
        return image


@dataclass
class GlyphGridRenderer(PageRenderer):
    """Turns as glyph-grid pages: one glyph centred on each `cell`-px cell, `page_size // cell` glyphs per line
    and lines per page (DejaVu Sans Mono, glyphs `glyph_size` x cell high), the layout of the demo's pages
    (data_pipelines/synth/glyph_grid.py). At 64 px per cell a page of the global view's size puts one glyph on
    each visual token, so a tiny model trained on such pages can read turns back, and a tier that shows the page
    at a smaller view packs several glyphs into each token: the optical memory's fading at toy scale. Text is
    drawn as given, characters one per cell (spaces leave a cell empty); a turn starts on a new line."""

    page_size: int = 256
    cell: int = 64
    glyph_size: float = 0.69
    margin: int = 0
    font_path: str | None = None  # default: DejaVu Sans Mono

    @cached_property
    def font(self) -> ImageFont.ImageFont:
        path = self.font_path or DEJAVU_SANS.replace("DejaVuSans.ttf", "DejaVuSansMono.ttf")
        return ImageFont.truetype(path, max(6, round(self.cell * self.glyph_size)))

    @property
    def line_height(self) -> int:
        return self.cell

    @property
    def lines_per_page(self) -> int:
        if self.page_size < self.cell:
            raise ValueError(f"no {self.cell}px cell fits a {self.page_size}px page")
        return self.page_size // self.cell

    def wrap(self, text: str) -> list[str]:
        per_line = self.page_size // self.cell
        lines = []
        for para in text.split("\n"):
            lines += [para[i:i + per_line] for i in range(0, max(len(para), 1), per_line)]
        return lines

    def render(self, page: PageLayout | Sequence[str]) -> Image.Image:
        lines = page.lines if isinstance(page, PageLayout) else page
        image = Image.new("RGB", (self.page_size, self.page_size), "white")
        draw = ImageDraw.Draw(image)
        for row, line in enumerate(lines):
            for col, ch in enumerate(line):
                centre = (col * self.cell + self.cell // 2, row * self.cell + self.cell // 2)
                draw.text(centre, ch, fill="black", font=self.font, anchor="mm")
        return image

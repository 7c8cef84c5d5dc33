"""Page elements: measured at a column width, then drawn onto the canvas, each recording its ground-truth blocks.

`TextBlock` (paragraphs, headings, titles, furniture), `PullQuote`, `ListBlock`, `TableBlock` (with caption) and
`FigureBlock` (a drawn chart with caption). Only paragraphs split across columns; the two pieces are linked by a
`truncated` relation so the page markdown joins them back into one paragraph.
"""

from __future__ import annotations

import html
import random

from PIL import ImageFont

from data_pipelines.synth.canvas import Canvas
from data_pipelines.synth.wrap import text_width, token_width, wrap

Color = tuple[int, int, int]


class Element:
    category = "text_block"
    space_before = 0  # extra gap above the element unless it starts a column

    def measure(self, width: int) -> int:
        raise NotImplementedError

    def draw(self, canvas: Canvas, x: int, y: int, width: int) -> None:
        raise NotImplementedError

    def split(self, width: int, room: int) -> tuple["Element", "Element"] | None:
        return None


def _vertical_offset(font: ImageFont.FreeTypeFont, line_height: int) -> tuple[int, int]:
    """(offset of the glyph top inside a line box, glyph box height) so text sits centred in its line."""
    ascent, descent = font.getmetrics()
    return max(0, (line_height - ascent - descent) // 2), ascent + descent


class TextBlock(Element):
    def __init__(self, text: str, font: ImageFont.FreeTypeFont, line_height: int, color: Color, cjk: bool,
                 category: str = "text_block", align: str = "left", first_indent: int = 0, ordered: bool = True,
                 space_before: int = 0, lines: list[str] | None = None, previous: "TextBlock | None" = None):
        self.text, self.font, self.line_height, self.color, self.cjk = text, font, line_height, color, cjk
        self.category, self.align, self.first_indent, self.ordered = category, align, first_indent, ordered
        self.space_before = space_before
        self._lines = {None: lines} if lines is not None else {}
        self.previous, self.anno_id = previous, None

    def lines(self, width: int) -> list[str]:
        if None in self._lines:  # pre-wrapped piece of a split paragraph
            return self._lines[None]
        if width not in self._lines:
            self._lines[width] = wrap(self.text, self.font, width, self.cjk, self.first_indent)
        return self._lines[width]

    def measure(self, width: int) -> int:
        return len(self.lines(width)) * self.line_height

    def _piece(self, lines: list[str], first_indent: int, previous: "TextBlock | None") -> "TextBlock":
        return TextBlock(self._join(lines), self.font, self.line_height, self.color, self.cjk, self.category,
                         self.align, first_indent, self.ordered, 0, lines, previous)

    def split(self, width: int, room: int) -> tuple["TextBlock", "TextBlock"] | None:
        lines = self.lines(width)
        k = room // self.line_height
        if k < 2 or len(lines) - k < 1 or self.category != "text_block":
            return None
        head = self._piece(lines[:k], self.first_indent, self.previous)
        return head, self._piece(lines[k:], 0, head)

    def _join(self, lines: list[str]) -> str:
        return ("" if self.cjk else " ").join(lines)

    def draw(self, canvas: Canvas, x: int, y: int, width: int) -> None:
        lines = self.lines(width)
        if not lines:
            return
        offset, glyph_h = _vertical_offset(self.font, self.line_height)
        justify = self.align == "justify" and not self.cjk
        x0, x1 = float("inf"), 0.0
        for i, line in enumerate(lines):
            ly = y + i * self.line_height + offset
            indent = self.first_indent if i == 0 else 0
            w = text_width(self.font, line, self.cjk)
            if self.align == "center":
                lx = x + (width - w) / 2
            elif self.align == "right":
                lx = x + width - w
            else:
                lx = x + indent
            if justify and i < len(lines) - 1 and " " in line and self._justify(canvas, line, lx, ly, width - indent):
                x0, x1 = min(x0, lx), max(x1, x + width)
                continue
            canvas.draw.text((lx, ly), line, font=self.font, fill=self.color)
            x0, x1 = min(x0, lx), max(x1, lx + w)
        box = (x0, y + offset, x1, y + (len(lines) - 1) * self.line_height + offset + glyph_h)
        self.anno_id = canvas.add_block(self.category, box, self._join(lines), ordered=self.ordered)
        if self.previous is not None and self.previous.anno_id is not None:
            canvas.link_truncated(self.previous.anno_id, self.anno_id)

    def _justify(self, canvas: Canvas, line: str, x: float, y: float, width: float) -> bool:
        words = line.split(" ")
        widths = [token_width(self.font, w) for w in words]
        gap = (width - sum(widths)) / (len(words) - 1)
        if gap > 3 * token_width(self.font, " "):
            return False  # a very loose line reads better ragged
        for word, w in zip(words, widths):
            canvas.draw.text((x, y), word, font=self.font, fill=self.color)
            x += w + gap
        return True


class PullQuote(TextBlock):
    """A large centred quotation between rules, inside the column flow (magazine style)."""

    def __init__(self, *args, rule_color: Color, **kwargs):
        super().__init__(*args, align="center", **kwargs)
        self.rule_color, self.pad = rule_color, max(4, self.line_height // 2)

    def measure(self, width: int) -> int:
        return super().measure(width - 2 * self.pad) + 2 * self.pad

    def split(self, width: int, room: int) -> None:
        return None  # a quotation is never broken across columns

    def draw(self, canvas: Canvas, x: int, y: int, width: int) -> None:
        h = self.measure(width)
        canvas.draw.line((x, y, x + width, y), fill=self.rule_color, width=2)
        canvas.draw.line((x, y + h - 1, x + width, y + h - 1), fill=self.rule_color, width=2)
        super().draw(canvas, x + self.pad, y + self.pad, width - 2 * self.pad)


class ListBlock(Element):
    """Bulleted or numbered items with a hanging indent; one `text_block` whose text has markdown markers."""

    def __init__(self, items: list[str], font: ImageFont.FreeTypeFont, line_height: int, color: Color,
                 cjk: bool, ordered: bool, marker: str, space_before: int = 0):
        self.items, self.font, self.line_height, self.color, self.cjk = items, font, line_height, color, cjk
        self.ordered, self.marker, self.space_before = ordered, marker, space_before
        self.markers = [marker.format(i + 1) if ordered else marker for i in range(len(items))]
        self.indent = int(max(token_width(font, m) for m in self.markers) + token_width(font, "  "))
        self._wrapped: dict[int, list[list[str]]] = {}

    def _wrap(self, width: int) -> list[list[str]]:
        if width not in self._wrapped:
            self._wrapped[width] = [wrap(it, self.font, width - self.indent, self.cjk) for it in self.items]
        return self._wrapped[width]

    def measure(self, width: int) -> int:
        return sum(len(lines) for lines in self._wrap(width)) * self.line_height

    def draw(self, canvas: Canvas, x: int, y: int, width: int) -> None:
        offset, glyph_h = _vertical_offset(self.font, self.line_height)
        row, x1 = 0, x
        for marker, lines in zip(self.markers, self._wrap(width)):
            canvas.draw.text((x, y + row * self.line_height + offset), marker, font=self.font, fill=self.color)
            for line in lines:
                canvas.draw.text((x + self.indent, y + row * self.line_height + offset), line, font=self.font,
                                 fill=self.color)
                x1 = max(x1, x + self.indent + text_width(self.font, line, self.cjk))
                row += 1
        joiner = "" if self.cjk else " "
        md = [f"{m if self.ordered else '-'} {joiner.join(lines)}" for m, lines in zip(self.markers, self._wrap(width))]
        canvas.add_block("text_block", (x, y + offset, x1, y + (row - 1) * self.line_height + offset + glyph_h),
                         "\n".join(md))


class TableBlock(Element):
    """A simple grid table (header row + body rows) with an optional caption above."""

    def __init__(self, rows: list[list[str]], font_path: str, bold_path: str, size: int, color: Color,
                 header_fill: Color | None, grid: bool, cjk: bool, caption: TextBlock | None = None,
                 stretch: bool = True, space_before: int = 0):
        self.rows, self.font_path, self.bold_path, self.size = rows, font_path, bold_path, size
        self.color, self.header_fill, self.grid, self.cjk = color, header_fill, grid, cjk
        self.caption, self.stretch, self.space_before = caption, stretch, space_before
        self._fit: dict[int, tuple | None] = {}

    def _layout(self, width: int):
        """(font, bold, column widths, row height, number of columns kept) or None when it cannot fit."""
        if width in self._fit:
            return self._fit[width]
        from data_pipelines.synth.fonts import load_font

        result = None
        for scale in (1.0, 0.9, 0.8, 0.7):
            size = max(7, round(self.size * scale))
            font, bold = load_font(self.font_path, size), load_font(self.bold_path, size)
            pad = max(3, size // 2)
            ncols = len(self.rows[0])
            while ncols >= 2:
                natural = [max(text_width(bold if r == 0 else font, row[c], self.cjk)
                               for r, row in enumerate(self.rows)) + 2 * pad for c in range(ncols)]
                if sum(natural) <= width:
                    if self.stretch:
                        extra = (width - sum(natural)) / ncols
                        natural = [w + extra for w in natural]
                    result = (font, bold, natural, round(size * 1.8), ncols, pad)
                    break
                ncols -= 1
            if result:
                break
        self._fit[width] = result
        return result

    def measure(self, width: int) -> int:
        fit = self._layout(width)
        if fit is None:
            return 10 ** 9  # cannot fit this column: the flow drops it
        cap = self.caption.measure(width) + fit[3] // 3 if self.caption else 0
        return cap + fit[3] * len(self.rows)

    def draw(self, canvas: Canvas, x: int, y: int, width: int) -> None:
        font, bold, widths, row_h, ncols, pad = self._layout(width)
        if self.caption:
            self.caption.draw(canvas, x, y, width)
            y += self.caption.measure(width) + row_h // 3
        d = canvas.draw
        total_w, total_h = sum(widths), row_h * len(self.rows)
        if self.header_fill:
            d.rectangle((x, y, x + total_w, y + row_h), fill=self.header_fill)
        line = tuple(min(255, c + 60) for c in self.color)
        for r, row in enumerate(self.rows):
            cx = x
            f = bold if r == 0 else font
            ty = y + r * row_h + (row_h - sum(f.getmetrics())) // 2
            for c in range(ncols):
                d.text((cx + pad, ty), row[c], font=f, fill=self.color)
                cx += widths[c]
            if self.grid or r in (0, 1):
                d.line((x, y + r * row_h, x + total_w, y + r * row_h), fill=line, width=1)
        d.line((x, y + total_h, x + total_w, y + total_h), fill=line, width=1)
        if self.grid:
            cx = x
            for w in [0] + widths[:ncols]:
                cx += w
                d.line((cx, y, cx, y + total_h), fill=line, width=1)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row[:ncols]) + "</tr>"
                       for row in self.rows)
        text = "\n".join(" ".join(row[:ncols]) for row in self.rows)
        canvas.add_block("table", (x, y, x + total_w, y + total_h), text, html=f"<table>{body}</table>")


class FigureBlock(Element):
    """A drawn chart (bars, lines, scatter or pie) with a caption below."""

    def __init__(self, rng: random.Random, aspect: float, fraction: float, colors: list[Color], ink: Color,
                 caption: TextBlock, space_before: int = 0):
        self.rng, self.aspect, self.fraction, self.colors, self.ink = rng, aspect, fraction, colors, ink
        self.caption, self.space_before = caption, space_before
        self.kind = rng.choice(["bars", "lines", "scatter", "pie"])
        self.seed = rng.random()

    def _size(self, width: int) -> tuple[int, int]:
        w = int(width * self.fraction)
        return w, int(w * self.aspect)

    def measure(self, width: int) -> int:
        w, h = self._size(width)
        return h + self.caption.line_height // 2 + self.caption.measure(width)

    def draw(self, canvas: Canvas, x: int, y: int, width: int) -> None:
        w, h = self._size(width)
        fx = x + (width - w) // 2
        self._chart(canvas, fx, y, w, h)
        canvas.add_block("figure", (fx, y, fx + w, y + h))
        self.caption.draw(canvas, x, y + h + self.caption.line_height // 2, width)

    def _chart(self, canvas: Canvas, x: int, y: int, w: int, h: int) -> None:
        rng, d = random.Random(self.seed), canvas.draw
        d.rectangle((x, y, x + w, y + h), outline=self.ink, width=1)
        m = max(4, min(w, h) // 10)
        left, top, right, bottom = x + m, y + m, x + w - m, y + h - m
        if self.kind == "pie":
            r = min(right - left, bottom - top) // 2
            cx, cy = (left + right) // 2, (top + bottom) // 2
            start = 0.0
            for i in range(rng.randint(3, 6)):
                end = 360.0 if i == 5 else start + rng.uniform(30, 120)
                d.pieslice((cx - r, cy - r, cx + r, cy + r), start, min(end, 360),
                           fill=self.colors[i % len(self.colors)])
                start = end
                if start >= 360:
                    break
            return
        d.line((left, top, left, bottom, right, bottom), fill=self.ink, width=1)
        n = rng.randint(4, 12)
        step = (right - left) / n
        if self.kind == "bars":
            for i in range(n):
                bh = rng.uniform(0.1, 1.0) * (bottom - top)
                d.rectangle((left + i * step + step * 0.15, bottom - bh, left + (i + 1) * step - step * 0.15, bottom),
                            fill=self.colors[0])
        elif self.kind == "lines":
            for s in range(rng.randint(1, 3)):
                v, pts = rng.uniform(0.3, 0.7), []
                for i in range(n + 1):
                    v = min(1.0, max(0.0, v + rng.uniform(-0.2, 0.2)))
                    pts.append((left + i * step, bottom - v * (bottom - top)))
                d.line(pts, fill=self.colors[s % len(self.colors)], width=2)
        else:
            for _ in range(n * 4):
                px, py = rng.uniform(left, right), rng.uniform(top, bottom)
                d.ellipse((px - 2, py - 2, px + 2, py + 2), fill=self.colors[0])

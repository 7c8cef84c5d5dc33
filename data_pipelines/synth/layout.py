"""The layout engine: page regions (furniture, title band, column bands, sidebar) and the flow of content into them.

Reading order is the order of placement: furniture first but unordered; then the title band; then each body band
column by column (top to bottom, left to right); a full-width element between two bands comes between them; a
sidebar box comes after the main flow. On multi-column pages this order differs from raster order (a raster scan
reads across columns), which is the point: the paper's causal flow queries must learn to reorder.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from data_pipelines.synth.canvas import Canvas
from data_pipelines.synth.content import TextSource
from data_pipelines.synth.elements import Element, FigureBlock, ListBlock, PullQuote, TableBlock, TextBlock
from data_pipelines.synth.fonts import load_font
from data_pipelines.synth.style import PageStyle, pick

MAX_DROPS = 50  # elements too big for an empty column before a flow gives up (guards against a loop)


@dataclass
class Rect:
    x: int
    y: int
    w: int
    h: int

    @property
    def bottom(self) -> int:
        return self.y + self.h


class ElementFactory:
    """Makes the next body element on demand, by the configured element mix."""

    def __init__(self, rng: random.Random, text: TextSource, style: PageStyle, weights: dict[str, float]):
        self.rng, self.text, self.style, self.weights = rng, text, style, weights
        self.cjk = text.zh
        s = style
        self.body = load_font(s.body.path("regular"), s.body_size)
        self.italic = load_font(s.body.path("italic"), s.body_size)
        self.bold = load_font(s.body.path("bold"), s.body_size)
        self.heading_font = load_font(s.display.path("bold"), round(s.body_size * s.heading_scale))
        self.numbered = rng.random() < 0.4
        self.section, self.subsection, self.figures, self.tables = 0, 0, 0, 0
        self.last = "heading"  # no heading right at the start of the body: pages usually open with text
        self.justify = "justify" if s.justify else "left"

    # ------------------------------------------------------------------ element makers
    def paragraph(self, text: str | None = None) -> TextBlock:
        s = self.style
        indent = round(s.body_size * 1.5) if s.indent else 0
        return TextBlock(text or self.text.paragraph(), self.body, s.line_height, s.ink, self.cjk,
                         align=self.justify, first_indent=indent)

    def heading(self) -> TextBlock:
        s = self.style
        number = None
        if self.numbered:
            if self.section == 0 or self.rng.random() < 0.5:
                self.section, self.subsection = self.section + 1, 0
                number = f"{self.section}."
            else:
                self.subsection += 1
                number = f"{self.section}.{self.subsection}"
        size = self.heading_font.size
        color = s.accent if self.rng.random() < 0.5 else s.ink
        return TextBlock(self.text.heading(number), self.heading_font, round(size * 1.3), color, self.cjk,
                         category="title", space_before=round(s.line_height * 0.8))

    def list_block(self) -> ListBlock:
        s = self.style
        ordered = self.rng.random() < 0.4
        marker = self.rng.choice(["{}.", "{})", "({})"]) if ordered else self.rng.choice(["•", "–", "▪", "·"])
        return ListBlock(self.text.list_items(self.rng.randint(2, 6)), self.body, s.line_height, s.ink, self.cjk,
                         ordered, marker, space_before=s.gap)

    def table(self) -> TableBlock:
        s = self.style
        ncols, nrows = self.rng.randint(2, 5), self.rng.randint(3, 8)
        kinds = self.text.column_kinds(ncols)
        header = [self.text.cell("label") for _ in range(ncols)]
        rows = [header] + [[self.text.cell(k) for k in kinds] for _ in range(nrows)]
        caption = None
        if self.rng.random() < 0.6:
            self.tables += 1
            font = self.bold if self.rng.random() < 0.5 else self.body
            caption = TextBlock(self.text.caption("table", self.tables), font, s.line_height, s.ink, self.cjk,
                                category="table_caption")
        fill = s.tint if self.rng.random() < 0.5 else None
        size = round(s.body_size * self.rng.uniform(0.85, 1.0))
        return TableBlock(rows, s.body.path("regular"), s.body.path("bold"), size, s.ink, fill,
                          grid=self.rng.random() < 0.5, cjk=self.cjk, caption=caption,
                          stretch=self.rng.random() < 0.6, space_before=s.line_height)

    def figure(self) -> FigureBlock:
        s = self.style
        self.figures += 1
        caption = TextBlock(self.text.caption("figure", self.figures), self.italic, s.line_height, s.ink, self.cjk,
                            category="figure_caption", align=self.rng.choice(["left", "center"]))
        colors = [s.accent, s.tint, (120, 120, 120), (200, 120, 40)]
        return FigureBlock(self.rng, self.rng.uniform(0.45, 0.75), self.rng.uniform(0.7, 1.0), colors, s.ink,
                           caption, space_before=s.line_height)

    def pull_quote(self) -> PullQuote:
        s = self.style
        font = load_font(s.display.path("italic"), round(s.body_size * self.rng.uniform(1.2, 1.5)))
        return PullQuote(self.text.quote(), font, round(font.size * 1.35), s.accent, self.cjk,
                         rule_color=s.accent, space_before=s.line_height)

    def next(self) -> Element:
        kind = pick(self.rng, self.weights)
        if kind == "heading" and self.last == "heading":
            kind = "paragraph"
        self.last = kind
        return {"paragraph": self.paragraph, "heading": self.heading, "list": self.list_block,
                "table": self.table, "figure": self.figure, "pull_quote": self.pull_quote}[kind]()


def flow(canvas: Canvas, columns: list[Rect], factory: ElementFactory, gap: int) -> None:
    """Fill the columns in order with elements from the factory; a paragraph that reaches a column's bottom
    continues at the top of the next column; whatever is left after the last column is not drawn."""
    pending: list[Element] = []
    drops = 0
    for col in columns:
        y = col.y
        while drops < MAX_DROPS:
            el = pending.pop(0) if pending else factory.next()
            space = 0 if y == col.y else max(gap, el.space_before)
            h = el.measure(col.w)
            room = col.bottom - y - space
            if h <= room:
                # Keep a heading with at least two lines of what follows it.
                if el.category == "title" and room - h < 2 * factory.style.line_height and y > col.y:
                    pending.insert(0, el)
                    break
                el.draw(canvas, col.x, y + space, col.w)
                y += space + h
                continue
            parts = el.split(col.w, room) if room > 0 else None
            if parts:
                parts[0].draw(canvas, col.x, y + space, col.w)
                pending.insert(0, parts[1])
                break
            if y == col.y:  # taller than an empty column: leave it out
                drops += 1
                continue
            pending.insert(0, el)
            break


def _columns(area: Rect, k: int, gutter: int) -> list[Rect]:
    w = (area.w - gutter * (k - 1)) // k
    return [Rect(area.x + i * (w + gutter), area.y, w, area.h) for i in range(k)]


def compose(canvas: Canvas, rng: random.Random, text: TextSource, style: PageStyle, layout: str,
            cfg) -> None:
    """Draw one page's furniture, title and body into `canvas` (cfg: SynthConfig)."""
    W, H = canvas.width, canvas.height
    short = min(W, H)
    margin = round(short * rng.uniform(*cfg.margin))
    left, right = margin, W - round(margin * rng.uniform(0.8, 1.2))
    top, bottom = round(margin * rng.uniform(0.7, 1.1)), H - margin
    s, ink, cjk = style, style.ink, text.zh
    small = load_font(s.body.path("regular"), max(7, round(s.body_size * 0.8)))
    small_lh = round(small.size * 1.3)
    gray = tuple(min(255, c + 90) for c in ink)

    # ---- furniture: running header, footer, page number (order null, as in OmniDocBench)
    if rng.random() < cfg.p_header:
        align = rng.choice(["left", "center", "right"])
        TextBlock(text.header_text(), small, small_lh, gray, cjk, category="header", align=align,
                  ordered=False).draw(canvas, left, top, right - left)
        top += small_lh
        if s.rules:
            canvas.draw.line((left, top + 2, right, top + 2), fill=gray, width=1)
        top += small_lh
    number_at = rng.choice(["left", "center", "right"])
    if rng.random() < cfg.p_page_number:
        TextBlock(str(rng.randint(1, 480)), small, small_lh, gray, cjk, category="page_number", align=number_at,
                  ordered=False).draw(canvas, left, bottom - small_lh, right - left)
        bottom -= small_lh
    if rng.random() < cfg.p_footer:
        align = "right" if number_at == "left" else "left"
        TextBlock(text.footer_text(), small, small_lh, gray, cjk, category="footer", align=align,
                  ordered=False).draw(canvas, left, bottom - small_lh, right - left)
        bottom -= small_lh
        if s.rules:
            canvas.draw.line((left, bottom - 3, right, bottom - 3), fill=gray, width=1)
    bottom -= small_lh // 2

    factory = ElementFactory(rng, text, style, cfg.elements)
    body = Rect(left, top, right - left, bottom - top)

    # ---- title band, full width
    y = body.y
    if rng.random() < cfg.p_title:
        font = load_font(s.display.path("bold"), round(s.body_size * s.title_scale))
        align = rng.choice(["left", "left", "center"])
        title = TextBlock(text.title(), font, round(font.size * 1.2), s.accent if rng.random() < 0.4 else ink, cjk,
                          category="title", align=align)
        y = _place(canvas, title, body, y)
        if rng.random() < 0.5:
            byline = TextBlock(text.byline(), factory.italic, s.line_height, gray, cjk, align=align)
            y = _place(canvas, byline, body, y + s.line_height // 2)
        if rng.random() < 0.3:
            y = _place(canvas, factory.paragraph(text.paragraph(2, 4)), body, y + s.line_height)
        if s.rules and rng.random() < 0.5:
            canvas.draw.line((body.x, y + s.line_height // 2, body.x + body.w, y + s.line_height // 2), fill=gray)
        y += s.line_height * 2
    rest = Rect(body.x, y, body.w, body.bottom - y)
    if rest.h < 3 * s.line_height:
        return

    # ---- body
    gutter = round(s.body_size * rng.uniform(1.3, 2.5))
    min_col = s.body_size * (11 if cjk else 14)  # narrower columns hold too few words per line
    k = {"single": 1, "two_column": 2, "three_column": 3, "sidebar": rng.choice([1, 2]),
         "mixed": rng.choice([2, 3])}[layout]
    width_for_main = rest.w * (0.68 if layout == "sidebar" else 1.0)
    while k > 1 and (width_for_main - gutter * (k - 1)) / k < min_col:
        k -= 1
    fill = rng.uniform(*cfg.fill)
    column_rules = k > 1 and rng.random() < 0.3

    if layout == "sidebar":
        side_w = round(rest.w * rng.uniform(0.26, 0.34))
        on_left = rng.random() < 0.5
        main = Rect(rest.x + (side_w + gutter if on_left else 0), rest.y, rest.w - side_w - gutter,
                    round(rest.h * fill))
        _flow_columns(canvas, main, k, gutter, factory, column_rules, ink)
        side_h = round(rest.h * rng.uniform(0.35, 1.0))
        side = Rect(rest.x + (0 if on_left else rest.w - side_w), rest.y, side_w, side_h)
        canvas.draw.rectangle((side.x, side.y, side.x + side.w, side.bottom), fill=s.tint,
                              outline=s.accent if rng.random() < 0.4 else None)
        pad = max(6, s.body_size)
        inner = Rect(side.x + pad, side.y + pad, side.w - 2 * pad, side.h - 2 * pad)
        side_factory = ElementFactory(rng, text, style, {"paragraph": 0.6, "list": 0.3, "heading": 0.1})
        side_factory.numbered = False  # a sidebar is not part of the article's section numbering
        head = side_factory.heading()
        head.space_before = 0
        y = _place(canvas, head, inner, inner.y) if head.measure(inner.w) < inner.h // 2 else inner.y
        flow(canvas, [Rect(inner.x, y + s.gap, inner.w, inner.bottom - y - s.gap)], side_factory, s.gap)
    elif layout == "mixed":
        top_h = round(rest.h * rng.uniform(0.3, 0.5))
        band = Rect(rest.x, rest.y, rest.w, top_h)
        _flow_columns(canvas, band, k, gutter, factory, column_rules, ink)
        y = band.bottom + s.line_height
        wide = factory.table() if rng.random() < 0.5 else factory.figure()
        if wide.measure(rest.w) <= rest.bottom - y - 4 * s.line_height:
            y = _place(canvas, wide, rest, y) + s.line_height
        band2 = Rect(rest.x, y, rest.w, round((rest.bottom - y) * fill))
        if band2.h > 2 * s.line_height:
            _flow_columns(canvas, band2, k, gutter, factory, column_rules, ink)
    else:
        _flow_columns(canvas, Rect(rest.x, rest.y, rest.w, round(rest.h * fill)), k, gutter, factory,
                      column_rules, ink)


def _place(canvas: Canvas, el: Element, area: Rect, y: int) -> int:
    el.draw(canvas, area.x, y, area.w)
    return y + el.measure(area.w)


def _flow_columns(canvas: Canvas, area: Rect, k: int, gutter: int, factory: ElementFactory, rules: bool,
                  ink) -> None:
    cols = _columns(area, k, gutter)
    if rules:
        for c in cols[1:]:
            x = c.x - gutter // 2
            canvas.draw.line((x, area.y, x, area.bottom), fill=tuple(min(255, v + 120) for v in ink), width=1)
    flow(canvas, cols, factory, factory.style.gap)

"""The page being drawn, and its ground truth: OmniDocBench blocks in the order they are placed.

The layout places content in reading order (band by band, column by column, sidebar last), so a block's `order`
is simply its placement index. Page furniture (running header, footer, page number) gets `order: null`, as in
OmniDocBench, which leaves it out of the page markdown and of the reading-order metric.
"""

from __future__ import annotations

from PIL import Image, ImageDraw


class Canvas:
    def __init__(self, width: int, height: int, background: tuple[int, int, int]):
        self.width, self.height = width, height
        self.image = Image.new("RGB", (width, height), background)
        self.draw = ImageDraw.Draw(self.image)
        self.blocks: list[dict] = []
        self.relations: list[dict] = []
        self._order = 0

    def add_block(self, category: str, box: tuple[float, float, float, float], text: str = "",
                  html: str | None = None, ordered: bool = True) -> int:
        """Record one block; returns its anno_id. `box` is (x0, y0, x1, y1) in page pixels."""
        x0, y0, x1, y1 = (round(float(v), 1) for v in box)
        order = None
        if ordered:
            self._order += 1
            order = self._order
        block = {"category_type": category, "poly": [x0, y0, x1, y0, x1, y1, x0, y1], "text": text,
                 "order": order, "anno_id": len(self.blocks), "ignore": False}
        if html is not None:
            block["html"] = html
        self.blocks.append(block)
        return block["anno_id"]

    def link_truncated(self, source: int, target: int) -> None:
        """`target` continues the paragraph `source` (cut by a column break), as OmniDocBench records it."""
        self.relations.append({"source_anno_id": source, "target_anno_id": target, "relation_type": "truncated"})

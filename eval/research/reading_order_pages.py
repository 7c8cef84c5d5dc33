"""A page's ground-truth reading order on the visual-token grid of its global view, and its layout type.

The page's blocks (OmniDocBench `layout_dets`: `poly` in page pixels, `order`) are mapped into the global view the
way the view recipe made it (`pad`: contain-resize + centred grey pad, the release's global view; `squash` /
`squash_pad`: stretched to the square), then each visual token (a `view / side` px cell) is given the ordered block
it overlaps most. Blocks without an `order` (page furniture the benchmark leaves out of the reading order) are not
used. The token's reading key is `rank of its block * n_visual + its raster index`: blocks in annotated order,
raster order inside a block (eval/research/reading_order.py).

Layout type: the page's own `page_attribute.layout` when the source records one (OmniDocBench: `single_column`,
`double_column`, ...); otherwise `k-column` with k the most ordered blocks side by side (disjoint in x) at the
height of any block's centre (a heading spanning the columns does not change it; a sidebar counts as a column).
"""

from __future__ import annotations

import torch

from ocr2.processing.views import ViewRecipe, view_transform


def _box(block: dict) -> tuple[float, float, float, float] | None:
    poly = block.get("poly") or []
    if len(poly) < 4:
        return None
    xs, ys = poly[0::2], poly[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def ordered_blocks(blocks: list[dict]) -> list[tuple[float, tuple[float, float, float, float]]]:
    """(order, box) of every block with a numeric order and a box, in reading order."""
    out = []
    for b in blocks:
        order, box = b.get("order"), _box(b)
        if isinstance(order, (int, float)) and not isinstance(order, bool) and box is not None:
            out.append((float(order), box))
    return sorted(out, key=lambda ob: ob[0])


def reading_keys(blocks: list[dict], recipe: ViewRecipe, image_size: tuple[int, int], side: int) -> torch.Tensor:
    """(side*side,) per visual token of the global view its reading key (module doc), -1 off every ordered block."""
    n_visual = side * side
    ordered = ordered_blocks(blocks)
    if not ordered:
        return torch.full((n_visual,), -1, dtype=torch.long)
    sx, sy, ox, oy = view_transform(recipe, image_size)
    boxes = torch.tensor([[x0 * sx + ox, y0 * sy + oy, x1 * sx + ox, y1 * sy + oy] for _, (x0, y0, x1, y1) in ordered],
                         dtype=torch.float64)
    # Dense rank of the order values: equal orders share a rank.
    orders = torch.tensor([o for o, _ in ordered], dtype=torch.float64)
    ranks = torch.unique(orders, return_inverse=True)[1]
    cell = recipe.global_size / side
    edges = torch.arange(side + 1, dtype=torch.float64) * cell
    lo, hi = edges[:-1], edges[1:]
    # overlap (rows, cols, blocks) = height overlap of the row band x width overlap of the column band
    dy = (torch.minimum(hi[:, None], boxes[None, :, 3]) - torch.maximum(lo[:, None], boxes[None, :, 1])).clamp_min(0)
    dx = (torch.minimum(hi[:, None], boxes[None, :, 2]) - torch.maximum(lo[:, None], boxes[None, :, 0])).clamp_min(0)
    overlap = (dy[:, None, :] * dx[None, :, :]).reshape(n_visual, -1)
    best = overlap.argmax(-1)  # the first maximum: the earlier block in reading order on a tie
    on = overlap.max(-1).values > 0
    keys = ranks[best] * n_visual + torch.arange(n_visual)
    return torch.where(on, keys, torch.full_like(keys, -1))


def layout_type(blocks: list[dict], attributes: dict | None = None) -> str:
    """The page's layout label (module doc)."""
    if attributes and attributes.get("layout"):
        return str(attributes["layout"])
    boxes = [box for _, box in ordered_blocks(blocks)]
    if not boxes:
        return "no-blocks"
    columns = max(_side_by_side([b for b in boxes if b[1] <= (y0 + y1) / 2 <= b[3]]) for _, y0, _, y1 in boxes)
    return f"{columns}-column"


def _side_by_side(boxes: list[tuple[float, float, float, float]]) -> int:
    """The most boxes with pairwise disjoint x-ranges (greedy by right edge: optimal for intervals)."""
    count, right = 0, float("-inf")
    for x0, _, x1, _ in sorted(boxes, key=lambda b: b[2]):
        if x0 >= right:
            count, right = count + 1, x1
    return count

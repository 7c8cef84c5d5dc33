"""Training targets from OmniDocBench blocks: the page markdown in reading order, and its grounded form.

Conventions follow the benchmark's own ground-truth markdown (the per-page `.md` files OmniDocBench ships beside
its JSON): blocks with a reading-order index, sorted by it, joined by a blank line (the evaluator splits
paragraphs on blank lines); titles as `# `, tables as their HTML, display formulas as `$$..$$`; page furniture
(header, footer, page number: `order` null) and figures (no text) left out; blocks joined by a `truncated`
relation (one paragraph cut by a column or page break) merged back into one paragraph.
"""

from __future__ import annotations

import re
import unicodedata

# Categories that carry no text a reader would transcribe in the page body.
SKIPPED_CATEGORIES = frozenset({"figure", "abandon", "header", "footer", "page_number", "text_mask", "need_mask",
                                "table_mask"})
# OmniDocBench category -> the label the release writes in `<|ref|>label<|/ref|>` (its grounded output).
GROUNDING_LABELS = {
    "title": "title", "text_block": "text", "table": "table", "figure": "image", "figure_caption": "image_caption",
    "figure_footnote": "image_footnote", "table_caption": "table_caption", "table_footnote": "table_footnote",
    "equation_isolated": "equation", "equation_caption": "equation_caption", "code_txt": "code",
    "reference": "reference", "page_footnote": "page_footnote",
}


_INDENT_MARK = re.compile(r"(?:(?<=\s)|^)/t ?", re.M)


def _is_cjk(ch: str) -> bool:
    return bool(ch) and ("CJK" in unicodedata.name(ch, "") or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef")


def join_truncated(parts: list[str]) -> str:
    """Re-join the pieces of one paragraph: no separator between CJK characters (the benchmark's own markdown
    does this), one space between Latin words."""
    out = ""
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if out and not (_is_cjk(out[-1]) or _is_cjk(part[0])):
            out += " "
        out += part
    return out


def block_markdown(block: dict) -> str:
    """One block as markdown (empty string when it has no transcribable content)."""
    category = block.get("category_type", "")
    if category == "table":
        return (block.get("html") or block.get("latex") or block.get("text") or "").strip()
    if category == "equation_isolated":
        latex = (block.get("latex") or block.get("text") or "").strip()
        if not latex or latex.startswith("$$"):
            return latex
        return f"$$\n{latex}\n$$"
    # OmniDocBench annotators mark indentation with "/t"; the benchmark's own markdown drops the marker.
    text = _INDENT_MARK.sub("", (block.get("text") or "")).strip()
    if category == "title" and text:
        return "# " + text
    return text


def _ordered(block: dict) -> bool:
    return block.get("order") is not None and not block.get("ignore") \
        and block.get("category_type") not in SKIPPED_CATEGORIES


def truncated_groups(blocks: list[dict], relations: list[dict] | None) -> list[list[dict]]:
    """Blocks grouped by OmniDocBench `truncated` relations (a paragraph cut by a column or page break), in first
    appearance order; blocks without an `anno_id` or relation stay alone. Shared with eval/metrics, which joins
    the parts its own (benchmark) way."""
    parent = {b["anno_id"]: b["anno_id"] for b in blocks if b.get("anno_id") is not None}

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for rel in relations or []:
        s, t = rel.get("source_anno_id"), rel.get("target_anno_id")
        if rel.get("relation_type") == "truncated" and s in parent and t in parent:
            parent[find(s)] = find(t)
    groups: dict[object, list[dict]] = {}
    for b in blocks:
        key = find(b["anno_id"]) if b.get("anno_id") in parent else id(b)
        groups.setdefault(key, []).append(b)
    return list(groups.values())


def _merge_truncated(blocks: list[dict], relations: list[dict] | None) -> list[dict]:
    """Blocks joined by `truncated` relations become one block (text joined in reading order) at the place of
    the first piece."""
    merged = []
    for parts in truncated_groups(blocks, relations):
        if len(parts) == 1 or any(p.get("category_type") == "table" for p in parts):
            merged.extend(parts)
            continue
        parts = sorted(parts, key=lambda p: p["order"])
        first = dict(parts[0])
        first["text"] = join_truncated([p.get("text") or "" for p in parts])
        merged.append(first)
    return merged


def reading_order_blocks(blocks: list[dict], relations: list[dict] | None = None) -> list[dict]:
    """The transcribable blocks of a page, truncated pieces merged, sorted by reading order."""
    kept = _merge_truncated([b for b in blocks if _ordered(b)], relations)
    return sorted(kept, key=lambda b: b["order"])


def blocks_to_markdown(blocks: list[dict], relations: list[dict] | None = None) -> str:
    """The page markdown in reading order (see the module docstring for the conventions)."""
    pieces = (block_markdown(b) for b in reading_order_blocks(blocks, relations))
    return "\n\n".join(p for p in pieces if p)


def _box_999(poly: list[float], width: int, height: int) -> list[int]:
    xs, ys = poly[0::2], poly[1::2]

    def norm(v: float, size: int) -> int:
        return min(999, max(0, round(v / size * 999)))

    return [norm(min(xs), width), norm(min(ys), height), norm(max(xs), width), norm(max(ys), height)]


def grounded_markdown(blocks: list[dict], width: int, height: int, relations: list[dict] | None = None) -> str:
    """The release's grounded output (`<|grounding|>` prompt): each block as
    `<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2]]<|/det|>` + newline + its markdown, boxes on a 0..999 grid of
    the page (the release maps back with x / 999 * W; ocr2.grounding parses this). Figures are kept (label
    `image`, no content) because the release grounds them too."""
    figures = [b for b in blocks if b.get("category_type") == "figure" and b.get("order") is not None]
    out = []
    for b in sorted(reading_order_blocks(blocks, relations) + figures, key=lambda b: b["order"]):
        label = GROUNDING_LABELS.get(b.get("category_type", ""), "text")
        x1, y1, x2, y2 = _box_999(b["poly"], width, height)
        head = f"<|ref|>{label}<|/ref|><|det|>[[{x1}, {y1}, {x2}, {y2}]]<|/det|>"
        body = block_markdown(b)
        out.append(f"{head}\n{body}" if body else head)
    return "\n\n".join(out)


_SPACES = re.compile(r"[ \t]+")


def normalize_markdown(md: str) -> str:
    """Whitespace-normalised markdown, for comparing renderings that differ only in spacing."""
    return "\n".join(_SPACES.sub(" ", line).strip() for line in md.strip().splitlines())

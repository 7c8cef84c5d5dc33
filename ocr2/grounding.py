"""Parse the release's grounded output into blocks, and strip it to plain markdown.

Grounded output interleaves `<|ref|>LABEL<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|>` headers with the block
content that follows them. Coordinates are normalised to 0..999 of the page (the release maps back with x/999*W).
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field

_HEADER = re.compile(r"<\|ref\|>(.*?)<\|/ref\|><\|det\|>(.*?)<\|/det\|>", re.S)


@dataclass
class GroundedBlock:
    label: str
    boxes: list[list[float]] = field(default_factory=list)  # pixel boxes [x1, y1, x2, y2] in the page image
    text: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _boxes(raw: str, width: int, height: int) -> list[list[float]]:
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return []  # a truncated or malformed box list (e.g. output cut at the token limit): keep the text
    if not isinstance(value, (list, tuple)):
        return []  # a model's `<|det|>5<|/det|>`: no box, the text is kept
    if value and isinstance(value[0], (int, float)):
        value = [value]
    out = []
    for box in value:
        if isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box):
            x1, y1, x2, y2 = box
            out.append([x1 / 999 * width, y1 / 999 * height, x2 / 999 * width, y2 / 999 * height])
    return out


def parse_grounding(text: str, width: int, height: int) -> list[GroundedBlock]:
    """Blocks in output order; text before the first header (if any) becomes an unlabelled block."""
    blocks: list[GroundedBlock] = []
    matches = list(_HEADER.finditer(text))
    lead = text[: matches[0].start()] if matches else text
    if lead.strip():
        blocks.append(GroundedBlock(label="", text=lead.strip()))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        blocks.append(GroundedBlock(label=m.group(1).strip(), boxes=_boxes(m.group(2), width, height),
                            text=text[m.end():end].strip()))
    return blocks


def strip_grounding(text: str) -> str:
    """Markdown without ref/det spans, as the release's eval script does before scoring."""
    text = _HEADER.sub("", text)
    text = re.sub(r"<\|/?(ref|det|grounding)\|>", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()

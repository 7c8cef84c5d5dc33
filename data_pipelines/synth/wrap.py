"""Greedy line breaking with cached token widths (the renderer's hot path).

Latin text breaks at spaces. Chinese breaks between any two Han characters, never inside a run of Latin letters or
digits, and lets closing punctuation hang past the right edge rather than start a line (a light form of the
kinsoku rule). Widths are summed per token, ignoring kerning across tokens, which is at most a pixel or two per
line; wrapping uses a 1% safety margin for it.
"""

from __future__ import annotations

import re

from PIL import ImageFont

_TOKENS_CJK = re.compile(r"[\x21-\x7e]+|\s|.")
_NO_LINE_START = set("，。！？；：、）」』”’》,.!?;:)")
_widths: dict[tuple[str, int], dict[str, float]] = {}
_MAX_CACHED = 50_000  # tokens per font; numbers in tables are endless, so the cache is reset when it grows


def token_width(font: ImageFont.FreeTypeFont, token: str) -> float:
    cache = _widths.setdefault((font.path, font.size), {})
    if len(cache) > _MAX_CACHED:
        cache.clear()
    w = cache.get(token)
    if w is None:
        w = cache[token] = font.getlength(token)
    return w


def text_width(font: ImageFont.FreeTypeFont, text: str, cjk: bool = False) -> float:
    if cjk:
        return sum(token_width(font, t) for t in _TOKENS_CJK.findall(text))
    space = token_width(font, " ")
    words = text.split(" ")
    return sum(token_width(font, w) for w in words) + space * (len(words) - 1)


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float, cjk: bool = False,
         first_indent: float = 0.0) -> list[str]:
    """Lines of `text` no wider than `width` (the first one `first_indent` narrower)."""
    width *= 0.99
    if cjk:
        return _wrap_cjk(text, font, width, first_indent)
    space = token_width(font, " ")
    lines: list[str] = []
    line: list[str] = []
    used, limit = 0.0, width - first_indent
    for word in text.split():
        w = token_width(font, word)
        if line and used + space + w > limit:
            lines.append(" ".join(line))
            line, used, limit = [], 0.0, width
        if not line and w > limit:  # a word longer than the line: break it by characters
            for piece in _hard_break(word, font, limit):
                lines.append(piece)
            limit = width
            continue
        used += (space if line else 0.0) + w
        line.append(word)
    if line:
        lines.append(" ".join(line))
    return lines


def _hard_break(word: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    out, cur, used = [], "", 0.0
    for ch in word:
        w = token_width(font, ch)
        if cur and used + w > width:
            out.append(cur)
            cur, used = "", 0.0
        cur += ch
        used += w
    return out + [cur] if cur else out


def _wrap_cjk(text: str, font: ImageFont.FreeTypeFont, width: float, first_indent: float) -> list[str]:
    lines: list[str] = []
    line, used, limit = "", 0.0, width - first_indent
    for token in _TOKENS_CJK.findall(text):
        w = token_width(font, token)
        if line and used + w > limit and token not in _NO_LINE_START:
            lines.append(line.rstrip())
            line, used, limit = "", 0.0, width
        if not line and token.isspace():
            continue
        line += token
        used += w
    if line.strip():
        lines.append(line.rstrip())
    return lines

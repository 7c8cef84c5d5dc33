"""HTML tables normalised the way the official evaluator normalises both sides before TEDS and table edit distance.

Reference (Apache-2.0; our own code): OmniDocBench @ 7bd6c2e `utils/data_preprocess.py::normalized_html_table`.
Steps: `th` becomes `td`; `thead` and `span` wrappers go (content kept); MathML `<math alttext=..>` becomes
`$alttext$`; entities are unescaped (`html.unescape`), newlines deleted, the text NFKC-normalised; only what lies
between the first `<table ..>` and the last `</table>` is kept; the `style/height/width/align/class` attributes
and `tbody`, `sup`, `sub`, `span`, `div`, `p` tags and `colgroup` blocks are deleted; every whitespace run
becomes one space (cell text keeps its single spaces). Inline LaTeX in cells is *not* rendered.

The benchmark does the first three steps with BeautifulSoup and re-serialises; we do them on the string, which
gives the same result for well-formed markup (including BeautifulSoup's habit of reducing a whitespace-only
text node to one newline or one space) (attribute quoting can differ for unquoted attributes, which changes
only the table edit distance, not TEDS). Unmatched predicted tables are read cell by cell (`table_cell_texts`).
"""

from __future__ import annotations

import html
import re
import unicodedata

import lxml.html
from lxml import etree

_TH_OPEN = re.compile(r"<th(?=[\s>/])", re.IGNORECASE)
_TH_CLOSE = re.compile(r"</th\s*>", re.IGNORECASE)
_UNWRAP = re.compile(r"</?(?:thead|span)(?:\s[^>]*)?>", re.IGNORECASE)
_MATH = re.compile(r"<math\b([^>]*)>.*?</math\s*>", re.IGNORECASE | re.DOTALL)
_ALTTEXT = re.compile(r"""alttext\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_TABLE_BODY = re.compile(r"<table\b[^>]*>(.*)</table>", re.DOTALL | re.IGNORECASE)
_DROPPED = tuple(re.compile(p) for p in (
    '( style=".*?")', '( height=".*?")', '( width=".*?")', '( align=".*?")', '( class=".*?")', "</?tbody>", r"\s+",
))
_INLINE_TAGS = ("<sup>", "</sup>", "<sub>", "</sub>", "<span>", "</span>", "<div>", "</div>", "<p>", "</p>",
                '<spandata-span-identity="">')
_COLGROUP = re.compile("<colgroup>.*?</colgroup>")
_CDOT = re.compile(r"\$\\cdot\$")
# Void elements, which BeautifulSoup writes self-closed (`<br/>`): matters for the table edit distance only.
_VOID = re.compile(r"<(br|hr|img|col|wbr)\b([^>]*?)\s*/?>", re.IGNORECASE)
# A text node of ASCII whitespace only (between two tags, or before the first / after the last one).
_BLANK_NODE = re.compile(r"(?:(?<=>)|^)[ \n\t\f\r]+(?=<|$)")


def _math_alttext(m: re.Match) -> str:
    alt = _ALTTEXT.search(m.group(1))
    return "$" + (html.unescape(alt.group(1) or alt.group(2) or "") if alt else "") + "$"


def _blank_node(m: re.Match) -> str:
    """BeautifulSoup keeps a whitespace-only text node as one newline if it holds one (deleted next), else a space."""
    return "\n" if "\n" in m.group(0) else " "


def normalize_table_html(markup: str) -> str:
    """The normalised `<html><body><table ..>..</table></body></html>` string, or "" when there is no table."""
    if "<table" not in markup.replace(" ", "").replace("'", '"'):
        return ""
    s = _BLANK_NODE.sub(_blank_node, _MATH.sub(_math_alttext, markup))
    s = _UNWRAP.sub("", _TH_CLOSE.sub("</td>", _TH_OPEN.sub("<td", s)))
    s = _VOID.sub(lambda m: f"<{m.group(1).lower()}{m.group(2)}/>", s)
    s = unicodedata.normalize("NFKC", html.unescape(s).replace("\n", "")).strip()
    s = "".join(_TABLE_BODY.findall(s))
    for pattern in _DROPPED:
        s = pattern.sub(" " if pattern.pattern == r"\s+" else "", s)
    s = '<html><body><table border="1" >' + s + "</table></body></html>"
    for tag in _INLINE_TAGS:
        s = s.replace(tag, "")
    return _COLGROUP.sub("", s)


def _single_string(el) -> str | None:
    """BeautifulSoup's `.string` of an element: its text when that is its only child, recursing through a
    single child element; None otherwise."""
    children = list(el)
    if not children:
        return el.text
    if len(children) == 1 and not (el.text or "") and not (children[0].tail or ""):
        return _single_string(children[0])
    return None


def table_cell_texts(markup: str) -> list[str]:
    """The `td` cells of a predicted table that has no GT table to pair with, each as a text item (the benchmark
    keeps only cells holding one plain string, and drops `$\\cdot$`)."""
    try:
        root = lxml.html.fromstring(markup)
    except (etree.ParserError, ValueError):
        return []
    cells = root.iter("td") if root.tag != "td" else [root]
    texts = [_single_string(td) for td in cells]
    return [_CDOT.sub("", t).strip() for t in texts if t]

"""Split a predicted markdown page into the blocks OmniDocBench matches against its ground truth.

Reference: the OmniDocBench README's end-to-end input format (one markdown file per page, tables as HTML or
LaTeX, display formulas in `$$...$$`). Scores depend on paragraph separators (zai-org/GLM-OCR#37): blocks are
paragraphs separated by a blank line, so joining blocks with a single newline merges them. The benchmark's own
extractor (`md_tex_filter`) recognises more cases; this is our own, smaller version of the same idea:

- display formulas: `$$...$$`, `\\[...\\]`, `\\begin{equation|align|gather|multline}...`;
- tables: HTML `<table>...</table>`, markdown pipe tables (converted to HTML, as the benchmark's
  `md2html_table` does), LaTeX `tabular` (kept as a table of format "latex": converting it needs `latexml`,
  which the benchmark also requires, so here it is only scored as text; see omnidocbench.py);
- images (`![..](..)`, `<img>`) and DeepSeek grounding spans (`<|ref|>..<|/ref|><|det|>..<|/det|>`) are dropped,
  as the release's OmniDocBench post-processing (`run_dpsk_ocr2_eval_batch.py`) deletes them;
- everything else is text, one block per blank-line-separated paragraph.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PredBlock:
    kind: str  # "text" | "formula" | "table"
    content: str  # raw paragraph text, formula LaTeX (with delimiters) or table markup
    position: int  # character offset in the page: the prediction's reading order
    table_format: str | None = None  # "html" | "markdown" | "latex" for tables, else None


_FENCE = re.compile(r"^\s*```(?:markdown|md)?[ \t]*\n(.*?)\n```\s*$", re.DOTALL | re.IGNORECASE)
_DROP = re.compile(r"<\|ref\|>.*?<\|/ref\|>|<\|det\|>.*?<\|/det\|>|!\[[^\]]*\]\([^)]*\)|<img\b[^>]*>", re.DOTALL)
_BLOCKS = re.compile(
    r"(?P<html_table><table\b.*?</table>)"
    r"|(?P<latex_table>\\begin\{tabular\}.*?\\end\{tabular\})"
    r"|(?P<formula>\$\$.+?\$\$|\\\[.+?\\\]"
    r"|\\begin\{(?P<env>equation|align|gather|multline)\*?\}.*?\\end\{(?P=env)\*?\})",
    re.DOTALL | re.IGNORECASE,
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_PIPE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def unwrap_code_fence(md: str) -> str:
    """Remove a ```markdown fence wrapping the whole page (chat models often add one; it is not page content)."""
    m = _FENCE.match(md)
    return m.group(1) if m else md


def split_markdown(md: str) -> list[PredBlock]:
    """Blocks of one predicted page, in prediction order (sorted by `position`)."""
    md = _DROP.sub(lambda m: " " * len(m.group(0)), unwrap_code_fence(md))  # same length: offsets stay valid
    blocks: list[PredBlock] = []
    cursor = 0
    for m in _BLOCKS.finditer(md):
        blocks.extend(_text_blocks(md[cursor : m.start()], cursor))
        if m.group("html_table"):
            blocks.append(PredBlock("table", m.group(0), m.start(), "html"))
        elif m.group("latex_table"):
            blocks.append(PredBlock("table", m.group(0), m.start(), "latex"))
        else:
            blocks.append(PredBlock("formula", m.group(0), m.start()))
        cursor = m.end()
    blocks.extend(_text_blocks(md[cursor:], cursor))
    return sorted(blocks, key=lambda b: b.position)


def _text_blocks(chunk: str, offset: int) -> list[PredBlock]:
    out: list[PredBlock] = []
    start = 0
    for piece in [*_PARAGRAPH_BREAK.finditer(chunk), None]:
        end = piece.start() if piece else len(chunk)
        out.extend(_paragraph_blocks(chunk[start:end], offset + start))
        start = piece.end() if piece else len(chunk)
    return out


def _paragraph_blocks(paragraph: str, offset: int) -> list[PredBlock]:
    """One paragraph, with any markdown pipe table inside it cut out as a table block."""
    if not paragraph.strip():
        return []
    lines = paragraph.split("\n")
    out: list[PredBlock] = []
    text_lines: list[str] = []
    text_start = offset
    pos = offset
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j].strip().startswith("|"):
            j += 1
        run = lines[i:j]
        if len(run) >= 2 and any(_PIPE_SEPARATOR.match(line) for line in run):
            if any(t.strip() for t in text_lines):
                out.append(PredBlock("text", "\n".join(text_lines), text_start))
            out.append(PredBlock("table", pipe_table_to_html(run), pos, "markdown"))
            pos += sum(len(line) + 1 for line in run)
            text_lines, text_start, i = [], pos, j
            continue
        if not text_lines:
            text_start = pos
        text_lines.append(lines[i])
        pos += len(lines[i]) + 1
        i += 1
    if any(t.strip() for t in text_lines):
        out.append(PredBlock("text", "\n".join(text_lines), text_start))
    return out


def pipe_table_to_html(lines: list[str]) -> str:
    """A markdown pipe table as an HTML table (no spans: pipe tables cannot express them)."""
    rows = []
    for line in lines:
        if _PIPE_SEPARATOR.match(line):
            continue
        cells = line.strip().strip("|").split("|")
        rows.append("<tr>" + "".join(f"<td>{html_lib.escape(c.strip())}</td>" for c in cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"

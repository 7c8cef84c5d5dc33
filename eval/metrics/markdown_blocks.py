"""Split a predicted markdown page into the items the official OmniDocBench evaluator matches against its GT.

Reference (Apache-2.0; our own code): OmniDocBench @ 7bd6c2e `utils/extract.py::md_tex_filter` and
`utils/data_preprocess.py` (`remove_markdown_fences`, `replace_repeated_chars`). In order, on the page string:

1. images `![..](..)` removed; ```markdown / ```html / ```latex fences and closing ``` removed; runs of more than
   four underscores or spaces shortened to four; `<html>`/`<body>` tags removed;
2. LaTeX tables (`table` environments, then balanced `tabular`s) and balanced HTML `<table>`s are cut out
   (replaced by spaces, so offsets stay valid) as table items;
3. display formulas `$$..$$` and `\\[..\\]` are cut out as formula items (their lines joined with a space,
   `$$..$$` rewritten as `\\[..\\]`); every inline `$..$` / `\\(..\\)` **also** becomes a formula item, flagged
   `equation_inline`, while staying in its paragraph's text - the matcher may pair it with a GT formula;
4. pipe tables are rewritten as HTML (pipe_tables.py) and cut out; fenced code blocks become text items;
5. the rest is split on blank lines (on single newlines when the page has no blank line at all); a paragraph
   that is a whole `<table>` or starts and ends with `$` becomes a table / formula item, any other a text item.

Positions: the character offset of an item, the prediction's reading order. Paragraph positions are counted the
way the benchmark counts them - without the separators between paragraphs - so they run slightly early; we keep
that, since it decides the order of paragraphs relative to formulas and tables and hence the reading-order score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .pipe_tables import has_pipe_table, pipe_tables_to_html


@dataclass(frozen=True)
class PredBlock:
    kind: str  # "text" | "formula" | "table"
    content: str  # paragraph text, formula LaTeX or table markup
    position: int  # character offset in the (rewritten) page: the prediction's reading order
    fine: str | None = None  # "equation_inline" | "md2html_table" | "code" | "text_block" | None
    table_format: str | None = None  # "html" | "latex" for tables, else None

    @property
    def category(self) -> str:
        """The category the benchmark reports for the item (its fine category when it has one)."""
        return self.fine or {"text": "text_all", "formula": "equation_isolated"}.get(self.kind, self.kind)


_IMAGE = re.compile(r"!\[.*?\]\(.*?\)")
_FENCES = tuple(re.compile(p, re.MULTILINE) for p in (r"^```markdown\n?", r"^```html\n?", r"^```latex\n?", r"```\n?$"))
_DISPLAY = re.compile(r"\$\$(.*?)\$\$|\\\[(.*?)\\\]|\$(.*?)\$|\\\((.*?)\\\)", re.DOTALL)
_DOLLARS = re.compile(r"\$\$(.*?)\$\$|\$(.*?)\$|\\\((.*?)\\\)", re.DOTALL)
_LATEX_TABLE_ENV = re.compile(r"\\begin{table}(.*?)\\end{table}", re.DOTALL)
_HTML_TABLE = re.compile(r"(<table.*?</table>)", re.DOTALL)
_CODE_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
_LATEX_STYLE = (
    (re.compile(r"\\title\{(.*?)\}"), r"\1"), (re.compile(r"\\title\s*\{\s*(.*?)\s*\}", re.DOTALL), r"\1"),
    (re.compile(r"\\text\s*\{\s*(.*?)\s*\}", re.DOTALL), r"\1"), (re.compile(r"\\section\*?\{(.*?)\}"), r"\1"),
    (re.compile(r"\\section\*?\{\s*(.*?)\s*\}", re.DOTALL), r"\1"),
)


def _blank(content: str, start: int, end: int) -> str:
    return content[:start] + " " * (end - start) + content[end:]


def _balanced(text: str, begin: str, end: str, step: int, restart_skip: int) -> list[tuple[int, int]]:
    """Outermost spans from `begin` to the matching `end` (both regexes), nesting allowed, scanned as the
    benchmark scans: it steps `step` characters (the length of its end pattern *string*) past a begin tag and
    past the start of an end tag - so a span ends `step` characters after its end tag starts - and restarts
    `restart_skip` characters after an unclosed begin tag."""
    spans, stack, pos = [], [], 0
    begin_re, end_re = re.compile(begin), re.compile(end)
    while pos < len(text):
        b, e = begin_re.search(text, pos), end_re.search(text, pos)
        if not b and not e:
            break
        if b and (not e or b.start() < e.start()):
            stack.append(b.start())
            pos = b.start() + step
        else:
            if stack:
                start = stack.pop()
                if not stack:
                    spans.append((start, e.start() + step))
            pos = e.start() + step
    if stack:
        offset = stack[0] + restart_skip
        spans += [(s + offset, t + offset) for s, t in _balanced(text[offset:], begin, end, step, restart_skip)]
    return spans


def _latex_tables(content: str) -> list[tuple[int, int]]:
    spans = []
    for m in _LATEX_TABLE_ENV.finditer(content):
        spans.append((m.start(), m.end()))
        content = _blank(content, m.start(), m.end())
    # the benchmark's pattern strings are r'\\begin{tabular}' and r'\\end{tabular}' (16 and 14 characters): a
    # tabular item therefore takes one character past its end tag along
    spans += _balanced(content, r"\\begin{tabular}", r"\\end{tabular}", 14, 16)
    return sorted(spans)


def preprocess(md: str) -> str:
    """Step 1: the page string the items are cut from."""
    content = _IMAGE.sub("", md)
    for fence in _FENCES:
        content = fence.sub("", content)
    content = re.sub(r"_{4,}", "____", content)
    content = re.sub(r" {4,}", "    ", content)
    for tag in ("<html>", "</html>", "<body>", "</body>"):
        content = content.replace(tag, "")
    return content


def _cut_tables(content: str, items: list[PredBlock]) -> str:
    for start, end in _latex_tables(content):
        items.append(PredBlock("table", content[start:end], start, table_format="latex"))
        content = _blank(content, start, end)
    for start, end in _balanced(content, r"<table(?:[^>]*)>", "</table>", 8, 16):
        items.append(PredBlock("table", content[start:end], start, table_format="html"))
        content = _blank(content, start, end)
    return content


def _cut_formulas(content: str, items: list[PredBlock]) -> str:
    for m in _DISPLAY.finditer(content):  # offsets of the string as it was before any formula was cut
        if not m.group(0):
            continue
        line = " ".join(m.group(0).strip().split("\n"))
        inner = _DOLLARS.search(line)
        if inner is None:  # \[...\] without dollars inside
            items.append(PredBlock("formula", line, m.start()))
            content = _blank(content, m.start(), m.end())
        elif inner.group(1):  # $$...$$
            items.append(PredBlock("formula", _DOLLARS.sub(r"\\[\1\\]", line), m.start()))
            content = _blank(content, m.start(), m.end())
        else:  # inline: an extra item, the text keeps it
            items.append(PredBlock("formula", _DOLLARS.sub(r"\\[\2\3\\]", line), m.start(), fine="equation_inline"))
    return content


def _cut_pipe_tables_and_code(content: str, items: list[PredBlock]) -> str:
    if has_pipe_table(content):
        content = pipe_tables_to_html(content)
        for m in _HTML_TABLE.finditer(content):
            items.append(PredBlock("table", m.group(0).strip(), m.start(), fine="md2html_table", table_format="html"))
            content = _blank(content, m.start(), m.end())
    for m in _CODE_BLOCK.finditer(content):
        items.append(PredBlock("text", m.group(2).strip(), m.start(), fine="code"))
        content = _blank(content, m.start(), m.end())
    return content


def _paragraphs(content: str, items: list[PredBlock]) -> None:
    for pattern, repl in _LATEX_STYLE:
        content = pattern.sub(repl, content)
    pieces = content.split("\n\n")
    if len(pieces) == 1:  # models that never leave a blank line: split on single newlines
        pieces = content.split("\n")
    position = 0
    for piece in pieces:
        start = position
        position += len(piece)  # the benchmark does not count the separators
        text = "\n".join(line.strip() for line in piece.strip().split("\n") if line.strip())
        if not text:
            continue
        if text.startswith("<table") and text.endswith("</table>"):
            items.append(PredBlock("table", text, start, table_format="html"))
        elif text.startswith("$") and text.endswith("$"):
            if text.replace("$", "").strip():
                items.append(PredBlock("formula", text, start))
        else:
            items.append(PredBlock("text", text, start, fine="text_block"))


def split_markdown(md: str) -> list[PredBlock]:
    """Items of one predicted page, sorted by position (stable: ties keep the order they were found in)."""
    items: list[PredBlock] = []
    content = _cut_tables(preprocess(md), items)
    content = _cut_formulas(content, items)
    content = _cut_pipe_tables_and_code(content, items)
    _paragraphs(content, items)
    return sorted(items, key=lambda b: b.position)

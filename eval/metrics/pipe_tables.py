"""Markdown pipe tables in a predicted page, rewritten as HTML the way the official evaluator does it.

Reference (Apache-2.0; our own code): OmniDocBench @ 7bd6c2e `utils/table_utils.py::convert_markdown_to_html`,
called by `utils/extract.py::md_tex_filter` when a page has at least two `|...|` lines. Its observable behaviour,
which we reproduce because it decides what a pipe table scores (TEDS) and what text is left around it:

1. every `|...|\\n` run (the shortest one; a line with spaces after its last `|` runs on into the next line) is
   replaced by its own small table whose first line is the header row and whose lines 3.. are body rows;
2. consecutive small tables are merged line by line into one `<table>`: header cells become `td`; every line
   that contains `:` or `---` is dropped - the separator row, but also any **cell** holding a colon (a quirk:
   "12:30" disappears from the table); rows left without cells vanish; and the non-blank text line right
   before the table is swallowed (another quirk: it is not scored as text);
3. `<table>` gets `border="1"` and every `<td>` `colspan="1" rowspan="1"` (no effect on TEDS).

The page text is rewritten in place, so character positions after the table shift; positions only order blocks.
"""

from __future__ import annotations

import re

PIPE_ROW = re.compile(r"\|\s*.*?\s*\|\n", re.DOTALL)
_COMMENT = re.compile(r"<!--[\s\S]*?-->")
_SMALL_TABLE = re.compile(r"<table>[\s\S]*?</table>")
_WRAPPER_LINE = re.compile(r"</?t(able|head|body)>")


def has_pipe_table(content: str) -> bool:
    """The benchmark converts pipe tables only when the page has two or more `|...|` runs."""
    return len(PIPE_ROW.findall(content + "\n")) >= 2


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.split("|")[1:-1]]


def _small_table(run: str) -> str:
    """One `|...|` run as an HTML table: first line the header, lines from the third on the body."""
    rows = [r.strip() for r in run.strip().split("\n")]
    parts = ["<table>\n  <thead>\n    <tr>\n"]
    parts += [f"      <th>{c}</th>\n" for c in _cells(rows[0])]
    parts.append("    </tr>\n  </thead>\n  <tbody>\n")
    for row in rows[2:]:
        parts.append("    <tr>\n")
        parts += [f"      <td>{c}</td>\n" for c in _cells(row)]
        parts.append("    </tr>\n")
    parts.append("  </tbody>\n</table>\n")
    return "".join(parts)


def _is_rule_line(line: str) -> bool:
    """The benchmark's separator-row test, which in effect matches any line with a colon or `---`."""
    return ":" in line or "---" in line


def _merge_block(block: str) -> str:
    """The small tables collected in `block`, merged into one table of their surviving rows."""
    kept: list[str] = []
    for table in _SMALL_TABLE.findall(_COMMENT.sub("", block)):
        lines = [ln.replace("<th>", "<td>").replace("</th>", "</td>") if "<th>" in ln else ln
                 for ln in table.split("\n")]
        lines = [ln for ln in lines if not _WRAPPER_LINE.search(ln)]
        if len(lines) > 2:  # more than an empty <tr></tr>
            kept.extend(lines)
    return "\n\n<table>\n" + "\n".join(kept) + "\n</table>\n\n"


def _merge_small_tables(text: str) -> str:
    """Walk the lines with a one-line delay (the benchmark's state machine), collecting runs of small tables."""
    out: list[str] = []
    block, inside, prev = "", False, ""
    for line in text.split("\n"):
        if "<table>" in line:
            inside = True
            block += prev  # the line before a table (text, or the previous table's end) joins the block
        elif inside:
            if not _is_rule_line(prev) and "</thead>" not in prev:
                block += "\n" + prev
            if "</table>" in prev:
                out.append(_merge_block(block))
                block, inside = "", False
        else:
            out.append(prev)
        prev = line
    if prev:
        if inside or "</table>" in prev:
            out.append(_merge_block(block + "\n" + prev))
        else:
            out.append(prev)
    return "\n".join(out)


def pipe_tables_to_html(content: str) -> str:
    """The page with its pipe tables rewritten as HTML tables (see the module docstring)."""
    content = content.replace("\r", "") + "\n"
    for run in PIPE_ROW.findall(content):
        content = content.replace(run, _small_table(run), 1)
    content = _merge_small_tables(content)
    return content.replace("<table>", '<table border="1" >').replace("<td>", '<td colspan="1" rowspan="1">')

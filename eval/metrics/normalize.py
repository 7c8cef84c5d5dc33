"""Text and formula normalisation as the OmniDocBench v1.5 end-to-end evaluator applies it before any distance.

Reference (Apache-2.0; our own code): opendatalab/OmniDocBench @ 7bd6c2e, `utils/data_preprocess.py`
(`clean_string`, `textblock2unicode`, `normalized_formula`). The benchmark scores content, not layout:

- text: inline formulas that contain `\\`, `^` or `_` are rendered to unicode (pylatexenc), then `clean_string`
  drops every character that is not a word character or CJK - whitespace, punctuation, markdown syntax;
- display formulas: delimiters, tags, environments, font and spacing commands and all spaces are removed and the
  rest is lower-cased (`normalize_formula`); the formula edit distance compares those strings.

Robustness: LaTeX-to-text conversion gets a time limit and never sees a trailing backslash (pylatexenc 3.0a,
the version the official evaluator pins, loops forever on one; the official pads it with a space, as we do).
"""

from __future__ import annotations

import logging
import re

from pylatexenc.latex2text import LatexNodes2Text

from .time_limit import StepTimeout, time_limit

# pylatexenc logs a warning for every macro it does not know; a page can have hundreds. Silence it once.
logging.getLogger("pylatexenc").setLevel(logging.ERROR)
_LATEX2TEXT = LatexNodes2Text()
_COMMAND = re.compile(r"\\[A-Za-z]+\*?")
LATEX_TIME_LIMIT_S = 5.0

# clean_string: the benchmark first deletes literal "\t", "\n", "/t", "/n" (the annotations hold such escapes
# where an indent or line break was meant) - as plain substring deletions, so "\tau" loses its "\t" too - and
# then every character outside [\w\u4e00-\u9fff].
_LITERAL_ESCAPES = ("\\t", "\\n", "\t", "\n", "/t", "/n")
_NOT_KEPT = re.compile(r"[^\w\u4e00-\u9fff]")

# Inline formulas in a text block: `$...$` or `\(...\)`, on one line (the benchmark's pattern has no DOTALL).
_INLINE_MATH = re.compile(r"\$(.*?)\$|\\\((.*?)\\\)")
# Escaped specials are dropped together with their backslash before deciding whether a snippet is LaTeX.
_ESCAPED_SPECIAL = re.compile(r"\\([\\_&%^])")


def clean_string(text: str) -> str:
    """OmniDocBench `clean_string`: delete the literal escapes, then keep only [\\w\\u4e00-\\u9fff]."""
    for escape in _LITERAL_ESCAPES:
        text = text.replace(escape, "")
    return _NOT_KEPT.sub("", text)


def _render(latex: str) -> str | None:
    """pylatexenc's unicode rendering of a snippet, or None when it cannot parse it in time. A trailing
    backslash is padded with a space, as the benchmark does (it hangs pylatexenc 3.0a)."""
    if latex.endswith("\\"):
        latex += " "
    try:
        with time_limit(LATEX_TIME_LIMIT_S):
            return _LATEX2TEXT.latex_to_text(latex)
    except (Exception, StepTimeout):  # pylatexenc raises assorted parser errors on malformed model output
        return None


def latex_to_unicode(latex: str) -> str:
    """Render one LaTeX snippet to unicode (``\\alpha`` -> ``α``, ``\\frac{2}{17}`` -> ``2/17``); if that fails,
    delete the command names, which keeps their arguments' characters."""
    rendered = _render(latex)
    return _COMMAND.sub("", latex) if rendered is None else rendered


def _inline_to_unicode(match: re.Match) -> str:
    content = match.group(1) if match.group(1) is not None else match.group(2)
    snippet = _ESCAPED_SPECIAL.sub("", content)
    if not any(c in snippet for c in "\\^_"):  # plain text between dollars: left as it is (clean_string drops $)
        return match.group(0)
    rendered = _render(snippet)
    return match.group(0) if rendered is None else rendered.strip()  # the benchmark skips what fails to parse


def inline_latex_to_unicode(text: str) -> str:
    """OmniDocBench `textblock2unicode`: each inline formula containing `\\`, `^` or `_` becomes its unicode."""
    return _INLINE_MATH.sub(_inline_to_unicode, text)


def normalize_text(text: str) -> str:
    """The string a text block is matched and scored on: inline LaTeX to unicode, then `clean_string`."""
    return clean_string(inline_latex_to_unicode(text))


# normalize_formula: the benchmark's `normalized_formula`. The deletions are plain substring removals in this
# order (so `\text` also strips the `\text` of `\textbf`, and braces stay); the list is the benchmark's, with
# `\text` twice: the second time after the spaces are gone, so a spaced-out `\ t e x t` loses it too.
_FORMULA_DELETIONS = (
    "\\mathbf", "\\mathrm", "\\mathnormal", "\\mathit", "\\mathbb", "\\mathcal", "\\mathscr", "\\mathfrak",
    "\\mathsf", "\\mathtt", "\\textbf", "\\text", "\\boldmath", "\\boldsymbol", "\\operatorname", "\\bm",
    "\\symbfit", "\\mathbfcal", "\\symbf", "\\scriptscriptstyle", "\\notag", "\\setlength", "\\coloneqq",
    "\\space", "\\thickspace", "\\thinspace", "\\medspace", "\\nobreakspace", "\\negmedspace", "\\quad", "\\qquad",
    "\\enspace", "\\substackw", " ", "$$", "\\left", "\\right", "\\displaystyle", "\\text",
)
_BRACKET_DISPLAY = re.compile(r"\\\[(.+?)(?<!\\)\\\]")
# Removed one pattern after the other, in this order (a removal can expose the next pattern's match).
_FORMULA_MARKUP = tuple(re.compile(p) for p in (
    r"\\tag\{.*?\}", r"\\hspace\{.*?\}", r"\\begin\{.*?\}", r"\\end\{.*?\}", r"\\arraycolsep.*?\}"))


def normalize_formula(latex: str) -> str:
    """OmniDocBench `normalized_formula`: the string display formulas are matched and edit-scored on."""
    s = latex.strip().strip("$").strip("\n")
    m = _BRACKET_DISPLAY.search(s)
    if m:
        s = m.group(1).strip()
    for pattern in _FORMULA_MARKUP:
        s = pattern.sub("", s)
    s = s.strip(".")
    for token in _FORMULA_DELETIONS:
        s = s.replace(token, "")
    return s.lower()

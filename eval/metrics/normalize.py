"""Text and formula normalisation as OmniDocBench applies it before any edit distance.

Reference: OmniDocBench's text normalised edit distance, step 1 (`utils/data_preprocess.py`: `textblock2unicode`
then `clean_string`). The benchmark scores *content*, not layout: every block is (a) rewritten so inline LaTeX
becomes the unicode it renders to, then (b) stripped of all whitespace and punctuation (`clean_string`), so
"α + β" and "$\\alpha+\\beta$" compare equal and markdown markers (`#`, `**`, `-`, `|`) never count as errors.
"""

from __future__ import annotations

import logging
import re

from pylatexenc.latex2text import LatexNodes2Text

# clean_string keeps only word characters (Python's \w is unicode-aware: letters, digits, underscore, CJK) and
# the CJK unified block; the CJK range is listed explicitly because the benchmark does so, not because \w
# misses it. Everything else - whitespace, punctuation, markdown syntax, leftover backslashes - is dropped.
_NOT_KEPT = re.compile(r"[^\w\u4e00-\u9fff]")

# Inline formulas as they appear in GT blocks (`$ ... $`) and in model output (`\( ... \)`, `$...$`).
# `$$` (display) is excluded by the lookarounds: display formulas are separate blocks, never inline text.
_INLINE_MATH = re.compile(r"(?<!\$)\$(?!\$)(.+?)(?<!\$)\$(?!\$)|\\\((.+?)\\\)", re.DOTALL)

# pylatexenc logs a warning for every macro it does not know; a page can have hundreds. Silence it once.
logging.getLogger("pylatexenc").setLevel(logging.ERROR)
_LATEX2TEXT = LatexNodes2Text()
_COMMAND = re.compile(r"\\[A-Za-z]+\*?")


# The benchmark's annotations sometimes hold a literal "\\t" / "\\n" (backslash and letter) or "/t" / "/n"
# where an indent or line break was meant (e.g. "\\t - Competence.", "\\t/t（1）棉绵锦"); clean_string deletes
# those escapes as well as real tabs/newlines, otherwise the stray "t"/"n" letters would survive the
# punctuation filter. The lookahead keeps words and commands that merely start with t/n ("\\tau", "/nodes").
_LITERAL_ESCAPES = re.compile(r"[\\/][tn](?![A-Za-z])")


def clean_string(text: str) -> str:
    """OmniDocBench `clean_string`: drop literal "\\t", "\\n", "/t", "/n" escapes, all whitespace and every char not
    matching [\\w\\u4e00-\\u9fff]."""
    return _NOT_KEPT.sub("", _LITERAL_ESCAPES.sub("", text))


def latex_to_unicode(latex: str) -> str:
    """Render one LaTeX snippet to plain unicode text (``\\alpha`` -> ``α``, ``\\frac{2}{17}`` -> ``2/17``).

    The benchmark does this with pylatexenc's LatexNodes2Text, and so do we; it is an approximation of what a
    reader sees (unknown macros such as ``\\varSigma`` vanish, layout is flattened), applied identically to
    prediction and ground truth so the approximation cancels out as far as possible. If pylatexenc cannot
    parse the snippet we fall back to deleting the command names, which keeps the arguments' characters.
    """
    try:
        return _LATEX2TEXT.latex_to_text(latex)
    except Exception:  # pylatexenc raises assorted parser errors on malformed model output
        return _COMMAND.sub("", latex)


def inline_latex_to_unicode(text: str) -> str:
    """OmniDocBench `textblock2unicode`: replace each inline formula of a text block by its unicode rendering."""
    return _INLINE_MATH.sub(lambda m: latex_to_unicode(m.group(1) if m.group(1) is not None else m.group(2)), text)


def normalize_text(text: str) -> str:
    """The string a text block is scored on: inline LaTeX to unicode, then `clean_string`."""
    return clean_string(inline_latex_to_unicode(text))


# Display-formula normalisation (our own light version of the benchmark's formula clean-up; OmniDocBench's
# `configs/end2end.yaml` scores them with `display_formula: [Edit_dist, CDM]`). Formula edit distance is only the
# CI proxy for CDM, so we only remove what cannot change the rendered formula: delimiters, whitespace,
# font/spacing commands, \left/\right, equation tags, and a trailing full stop or comma.
_DISPLAY_DELIMS = re.compile(
    r"^\s*(\$\$|\\\[|\\begin\{(?:equation|align|gather|multline|displaymath)\*?\})|"
    r"(\$\$|\\\]|\\end\{(?:equation|align|gather|multline|displaymath)\*?\})\s*$"
)
_FONT_COMMANDS = (
    r"mathrm|mathbf|mathit|mathsf|mathtt|mathnormal|boldsymbol|bm|operatorname\*?|text|textrm|textbf|textit"
)
# `\mathrm{d}` -> `d`: the font command goes with its braces when the argument is a simple group.
_FONT_GROUP = re.compile(r"\\(?:" + _FONT_COMMANDS + r")\s*\{([^{}]*)\}")
_FORMULA_NOISE = re.compile(
    r"\\(?:left|right|big|Big|bigg|Bigg|displaystyle|textstyle|scriptstyle|nonumber|notag|"
    r"quad|qquad|enspace|thinspace|medspace|thickspace|negthinspace|" + _FONT_COMMANDS + r")(?![A-Za-z])"
    r"|\\[,;:! ]|~"
)
_TAG = re.compile(r"\\tag\*?\{[^{}]*\}")


def normalize_formula(latex: str) -> str:
    """The string a display formula is compared on (edit distance; CDM is out of scope, see omnidocbench.py)."""
    s = latex.strip()
    for _ in range(2):  # `$$\n\begin{align}...\end{align}\n$$` has two delimiter layers
        s = _DISPLAY_DELIMS.sub("", s).strip()
    s = _TAG.sub("", s)
    s = _FONT_GROUP.sub(r"\1", s)
    s = _FORMULA_NOISE.sub("", s)
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".,，。")

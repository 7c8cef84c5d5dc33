"""Adversarial predictions on small pages built in code (tests/omnidocbench_cases.py), each scored by our
OmniDocBench scorer and compared, figure by figure, with what the official OmniDocBench v1.5 end-to-end evaluator
(opendatalab/OmniDocBench @ 7bd6c2e, quick_match) reported for the same files. The official values were measured
once (`python tests/omnidocbench_cases.py DIR` then `python -m eval.metrics.agreement DIR/gt.json DIR/pred --odb ODB
--official-python ODB_PYTHON --pages --official-json DIR/official.json`) and are recorded here as numbers: the test
needs neither the official code nor any data file. Text is the official with its index bug fixed;
`text_edit_official_index_bug` (given where it differs) is the official as released. A figure left out is None
(nothing of that kind on the page); `teds`/`teds_s` list the page's GT tables.
"""

import pytest
from omnidocbench_cases import cases

from eval.metrics import evaluate_pages, normalize_formula
from eval.metrics.agreement import PAGE_FIELDS, our_pages

OFFICIAL = {
    "begin_equation_bare": {
        "text_edit": 0.13818181818181818, "reading_order_edit": 0.0, "table_edit": 0.0, "teds": [1.0],
        "teds_s": [1.0],
    },
    "begin_equation_in_dollars": {
        "text_edit": 0.0, "formula_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.0, "teds": [1.0],
        "teds_s": [1.0],
    },
    "bracket_equation_with_tag": {
        "text_edit": 0.0, "formula_edit": 0.05714285714285714, "reading_order_edit": 0.0, "table_edit": 0.0,
        "teds": [1.0], "teds_s": [1.0],
    },
    "cjk_exact": {
        "text_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.0, "teds": [1.0], "teds_s": [1.0],
    },
    "cjk_latex_table": {
        "text_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 1.0, "teds": [0.0], "teds_s": [0.0],
    },
    "cjk_pipe_spaced": {
        "text_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.5280373831775701, "teds": [0.8980463980463981],
        "teds_s": [1.0],
    },
    "cjk_spaced_cells": {
        "text_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.04716981132075472, "teds": [0.8980463980463981],
        "teds_s": [1.0],
    },
    "duplicated": {
        "text_edit": 0.0, "formula_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.0, "teds": [1.0],
        "teds_s": [1.0],
    },
    "empty": {
        "text_edit": 1.0, "formula_edit": 1.0, "reading_order_edit": 1.0, "table_edit": 1.0, "teds": [0.0],
        "teds_s": [0.0],
    },
    "fenced": {
        "text_edit": 0.0, "formula_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.0, "teds": [1.0],
        "teds_s": [1.0],
    },
    "gt_markdown": {
        "text_edit": 0.0, "formula_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.0, "teds": [1.0],
        "teds_s": [1.0],
    },
    "headers_and_inline_math": {
        "text_edit": 0.02666666666666667, "formula_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.0,
        "teds": [1.0], "teds_s": [1.0],
    },
    "latex_table": {
        "text_edit": 0.0, "formula_edit": 0.0, "reading_order_edit": 0.0,
    },
    "no_table": {
        "text_edit": 0.0, "formula_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 1.0, "teds": [0.0],
        "teds_s": [0.0],
    },
    "pipe_table": {
        "text_edit": 0.0, "formula_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.5192307692307693,
        "teds": [1.0], "teds_s": [1.0],
    },
    "punctuation_paragraph": {
        "text_edit": 0.0, "text_edit_official_index_bug": 0.08494208494208494, "formula_edit": 0.0,
        "reading_order_edit": 0.0, "table_edit": 0.0, "teds": [1.0], "teds_s": [1.0],
    },
    "shuffled": {
        "text_edit": 0.0, "formula_edit": 0.0, "reading_order_edit": 1.0, "table_edit": 0.0, "teds": [1.0],
        "teds_s": [1.0],
    },
    "single_newlines": {
        "text_edit": 0.0, "formula_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.0, "teds": [1.0],
        "teds_s": [1.0],
    },
    "spaced_textcircled": {
        "text_edit": 0.6043956043956044, "reading_order_edit": 0.0,
    },
    "styled_html_table": {
        "text_edit": 0.0, "formula_edit": 0.0, "reading_order_edit": 0.0, "table_edit": 0.0430622009569378,
        "teds": [0.936996336996337], "teds_s": [1.0],
    },
    "underscore_blanks": {
        "text_edit": 0.0, "reading_order_edit": 0.0,
    },
    "underscore_blanks_spaces": {
        "text_edit": 0.0, "reading_order_edit": 0.0,
    },
}


def expected(name: str) -> dict:
    pinned = OFFICIAL[name]
    out = {f: pinned.get(f) for f in PAGE_FIELDS} | {"teds": pinned.get("teds", []), "teds_s": pinned.get("teds_s", [])}
    out["text_edit_official_index_bug"] = pinned.get("text_edit_official_index_bug", pinned.get("text_edit"))
    return out


@pytest.fixture(scope="module")
def pages():
    built = cases()
    return our_pages(evaluate_pages({name: md for name, (_, md) in built.items()}, [gt for gt, _ in built.values()]))


def test_every_case_is_pinned(pages):
    assert sorted(pages) == sorted(OFFICIAL)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_case_figures_equal_the_official(pages, name):
    want, got = expected(name), pages[name]
    for figure, value in want.items():
        if value is None:
            assert got[figure] is None, (name, figure, got[figure])
        else:
            assert got[figure] == pytest.approx(value, abs=1e-9), (name, figure)


def test_what_the_cases_show(pages):
    # order alone is charged for shuffled paragraphs, nothing for duplicated ones (unmatched predictions are free)
    assert (pages["shuffled"]["text_edit"], pages["shuffled"]["reading_order_edit"]) == (0.0, 1.0)
    assert pages["duplicated"]["text_edit"] == 0.0
    # a LaTeX table scores 0 (the benchmark cannot convert it); a GT table without LaTeX is then not scored at all
    assert pages["cjk_latex_table"]["teds"] == [0.0] and pages["latex_table"]["teds"] == []
    # an empty item before a formula shifts the official's categories: the labelled figure differs, ours does not
    assert pages["punctuation_paragraph"]["text_edit"] == 0.0 < pages["punctuation_paragraph"][
        "text_edit_official_index_bug"]


def test_formula_normaliser_drops_text_after_spaces_as_the_official():
    # the official deletion list holds `\text` twice, the second time after the spaces are gone (official output)
    spaced = r"\[ \ t e x t c i r c l e d { 1 } \ t e x t c i r c l e d { 2 } \]"
    assert normalize_formula(spaced) == "circled{1}circled{2}"
    assert normalize_formula(r"$\textbf{x} + \text{if}$") == "{x}+{if}"

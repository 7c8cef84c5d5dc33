"""TEDS / TEDS-S and the official table normalisation on hand-made tables with known answers."""

import pytest

from eval.metrics import normalize_table_html, teds
from eval.metrics.pipe_tables import pipe_tables_to_html
from eval.metrics.table_normalize import table_cell_texts

TABLE = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>dog</td></tr></table>"


def test_identical_tables_score_one():
    assert teds(TABLE, TABLE) == 1.0 and teds(TABLE, TABLE, structure_only=True) == 1.0


def test_th_thead_and_tbody_are_markup_noise():
    marked = "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>c</td><td>dog</td></tr></tbody></table>"
    assert teds(marked, TABLE) == 1.0


def test_one_wrong_cell_costs_its_edit_ratio_over_the_nodes_below_table():
    # 6 nodes below <table> (2 tr + 4 td); "dog" -> "cat" renames at cost 1
    assert teds(TABLE.replace("dog", "cat"), TABLE) == pytest.approx(1 - 1 / 6)


def test_cell_whitespace_is_collapsed_not_deleted():
    assert teds(TABLE.replace("dog", "d  o g"), TABLE) == pytest.approx(1 - (2 / 5) / 6)  # "d o g" vs "dog"


def test_inline_latex_in_cells_is_not_rendered():
    assert teds(TABLE.replace("dog", r"$\alpha$"), TABLE.replace("dog", "α")) < 1.0


def test_structure_only_ignores_content():
    assert teds(TABLE.replace("dog", "cat"), TABLE, structure_only=True) == 1.0


def test_a_span_difference_costs_a_full_rename():
    assert teds(TABLE.replace("<td>a</td>", '<td colspan="2">a</td>'), TABLE, structure_only=True) == pytest.approx(1 - 1 / 6)


def test_no_table_scores_zero():
    assert normalize_table_html("just text") == "" and teds("just text", TABLE) == 0.0


def test_normalisation_unescapes_and_applies_nfkc():
    assert "<td>& x</td>" in normalize_table_html("<table><tr><td>&amp;\u3000x</td></tr></table>")


def test_pipe_table_becomes_one_html_table_without_the_separator_row():
    html = pipe_tables_to_html("\n| a | b |\n|---|---|\n| c | dog |\n")
    assert teds(html, TABLE) == 1.0


def test_pipe_table_drops_cells_holding_a_colon_as_the_benchmark_does():
    html = pipe_tables_to_html("\n| a | b |\n|---|---|\n| c | 12:30 |\n")
    assert "12:30" not in html and ">c<" in html


def test_leftover_table_is_read_cell_by_cell():
    assert table_cell_texts(TABLE) == ["a", "b", "c", "dog"]

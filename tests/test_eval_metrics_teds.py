"""TEDS / TEDS-S on hand-made HTML tables with known tree edit distances."""

import pytest

from eval.metrics import html_to_tree, teds
from eval.metrics.markdown_blocks import pipe_table_to_html

GT = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>dog</td></tr></table>"  # 1 + 2 + 4 = 7 nodes


def test_identical_tables_score_one():
    assert teds(GT, GT) == 1.0
    assert teds(GT, GT, structure_only=True) == 1.0


def test_one_changed_cell_costs_its_normalised_text_distance():
    pred = GT.replace("dog", "dot")  # rename cost lev("dot", "dog") / 3 = 1/3 on a 7-node tree
    assert teds(pred, GT) == pytest.approx(1 - (1 / 3) / 7)
    assert teds(pred, GT, structure_only=True) == 1.0


def test_a_wholly_different_cell_costs_one_node():
    pred = GT.replace("dog", "xyz")
    assert teds(pred, GT) == pytest.approx(6 / 7)


def test_colspan_change_is_a_structural_error():
    gt = '<table><tr><td colspan="2">a</td></tr><tr><td>b</td><td>c</td></tr></table>'  # 6 nodes
    pred = "<table><tr><td>a</td><td></td></tr><tr><td>b</td><td>c</td></tr></table>"  # 7 nodes
    # cheapest script: relabel the spanning cell (span differs: 1) + insert one cell (1)
    assert teds(pred, gt, structure_only=True) == pytest.approx(1 - 2 / 7)


def test_th_thead_and_whitespace_are_normalised_away():
    pred = "<table><thead><tr><th> a </th></tr></thead><tbody><tr><td>b\n</td></tr></tbody></table>"
    gt = "<table><tr><td>a</td></tr><tr><td>b</td></tr></table>"
    assert teds(pred, gt) == 1.0


def test_missing_or_unparsable_prediction_scores_zero():
    assert teds("", GT) == 0.0
    assert teds("no table here", GT) == 0.0


def test_markdown_pipe_table_converts_to_the_same_tree():
    html = pipe_table_to_html(["| a | b |", "|---|:---:|", "| c | dog |"])
    assert teds(html, GT) == 1.0


def test_tree_has_table_rows_and_cells_with_spans():
    tree = html_to_tree('<table><tr><td rowspan="2">x</td></tr></table>')
    assert (tree.tag, tree.children[0].tag, tree.children[0].children[0].rowspan) == ("table", "tr", 2)
    assert tree.size() == 3

"""Loop detection and the repetition rate."""

import pytest

from eval.metrics import detect_loop, is_repetitive, repetition_rate
from eval.metrics.repetition import hit_token_limit

LOOP = "# Title\n\nSome normal text first.\n\n" + "the same line again\n" * 20
NORMAL = (
    "# Results\n\nThe model reads the left column first, then the right column. Tables keep their rows.\n\n"
    "<table><tr><td>1</td></tr><tr><td>1</td></tr><tr><td>1</td></tr><tr><td>1</td></tr></table>\n\nThe end."
)


def test_looping_tail_is_detected_with_its_unit():
    loop = detect_loop(LOOP)
    assert loop is not None
    assert loop.unit.strip() == "the same line again" and loop.repeats >= 19


def test_loop_cut_mid_unit_by_the_token_limit_is_still_a_loop():
    assert detect_loop(("abc def " * 30)[:-3]) is not None


def test_normal_text_is_not_a_loop():
    assert detect_loop(NORMAL) is None


def test_repeated_rows_inside_a_closed_table_are_not_a_loop():
    assert detect_loop("<table>" + "<tr><td></td></tr>" * 10 + "</table>") is None


def test_short_repetitions_are_below_the_span_threshold():
    assert detect_loop("ha ha ha ha") is None


def test_hit_token_limit_flag():
    assert hit_token_limit(8192, 8192)
    assert not hit_token_limit(100, 8192)
    assert not hit_token_limit(8192, 8192, stopped_by_eos=True)


def test_is_repetitive_counts_the_token_limit_even_without_a_loop():
    assert is_repetitive(NORMAL, hit_limit=True)


def test_repetition_rate_counts_loops_and_limit_hits():
    assert repetition_rate([NORMAL, LOOP, NORMAL], [False, False, True]) == pytest.approx(2 / 3)
    assert repetition_rate([NORMAL, LOOP]) == 0.5


def test_repetition_rate_rejects_empty_or_misaligned_inputs():
    with pytest.raises(ValueError):
        repetition_rate([])
    with pytest.raises(ValueError):
        repetition_rate([NORMAL], [True, False])

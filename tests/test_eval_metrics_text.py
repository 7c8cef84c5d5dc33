"""Normalisation, edit distance and Fox-style metrics on hand-made strings with known answers."""

import pytest

from eval.metrics import (
    clean_string, fox_metrics, fox_page_metrics, fox_tokenize, levenshtein, normalize_formula, normalize_text,
    normalized_edit_distance,
)


def test_clean_string_keeps_only_word_and_cjk_characters():
    assert clean_string("Hello, world!\t你好。 1-2_3 **bold**") == "Helloworld你好12_3bold"


def test_clean_string_drops_literal_tab_and_newline_escapes_of_the_annotations():
    assert clean_string(r"\t - Competence.\n \t/t（1）棉") == "Competence1棉"


def test_clean_string_deletes_escapes_as_plain_substrings_like_the_benchmark():
    assert clean_string(r"\tau /nodes") == "auodes"


def test_normalize_text_renders_inline_latex_to_unicode():
    assert normalize_text(r"Angle $\alpha$ and \(\beta\), ratio $ \frac{2}{17} $.") == "Angleαandβratio217"


def test_normalize_text_leaves_display_math_delimiters_alone():
    assert normalize_text("cost $$ 5 $$") == "cost5"


def test_normalize_formula_strips_delimiters_spacing_and_font_commands():
    assert normalize_formula("$$\n\\mathrm{d} x + \\left( Y \\right) .\n$$") == "{d}x+(y)"  # braces stay
    assert normalize_formula("\\[ x^{2} \\quad \\tag{3} \\]") == "x^{2}"
    assert normalize_formula("\\begin{equation} a=b \\end{equation}") == "a=b"


def test_levenshtein_known_distance():
    assert levenshtein("kitten", "sitting") == 3


def test_levenshtein_on_sequences_of_indices():
    assert levenshtein([1, 2, 3], [3, 2, 1]) == 2


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [("same", "same", 0.0), ("", "", 0.0), ("", "abcd", 1.0), ("kitten", "sitting", 3 / 7)],
)
def test_normalized_edit_distance(pred, gt, expected):
    assert normalized_edit_distance(pred, gt) == pytest.approx(expected)


def test_fox_identical_text_is_perfect():
    assert fox_page_metrics("a b c", "a b c") == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "edit_dist": 0.0}


def test_fox_token_sets_and_raw_character_edit_distance():
    m = fox_page_metrics("the cat sat", "the cat sat on the mat")
    assert (m["precision"], m["recall"]) == (1.0, pytest.approx(3 / 5))
    assert m["f1"] == pytest.approx(0.75)
    assert m["edit_dist"] == pytest.approx(11 / 22)


def test_fox_cjk_is_tokenised_per_character():
    assert fox_tokenize("我爱 Python 编程") == ["我", "爱", "Python", "编", "程"]
    m = fox_page_metrics("我爱北京", "我爱上海")
    assert (m["precision"], m["recall"], m["edit_dist"]) == (0.5, 0.5, 0.5)


def test_fox_empty_prediction_scores_zero():
    assert fox_page_metrics("", "some text") == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "edit_dist": 1.0}


def test_fox_metrics_is_the_mean_over_samples():
    m = fox_metrics(["a b", ""], ["a b", "c"])
    assert m == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "edit_dist": 0.5, "n": 2}


def test_fox_metrics_rejects_misaligned_inputs():
    with pytest.raises(ValueError):
        fox_metrics(["a"], ["a", "b"])

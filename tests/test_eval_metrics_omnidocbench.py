"""OmniDocBench page metrics on hand-made pages with known answers (no data files needed)."""

import pytest

from eval.metrics import (
    evaluate_page, evaluate_pages, gt_blocks, overall_score, quick_match, reading_order_edit, sequence_order_edit,
    split_markdown,
)

TABLE = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>dog</td></tr></table>"


def block(category, order, anno_id, **content):
    return {"category_type": category, "order": order, "anno_id": anno_id, "ignore": False, "poly": [0] * 8,
            **content}


def page(*blocks, relations=(), name="page.jpg"):
    return {"page_info": {"image_path": name}, "layout_dets": list(blocks), "extra": {"relation": list(relations)}}


THREE = page(
    block("text_block", 1, 0, text="First paragraph here."),
    block("text_block", 2, 1, text="Second one follows."),
    block("text_block", 3, 2, text="Third and last."),
)


# -- prediction splitting ------------------------------------------------------------------------------------
def test_split_markdown_separates_text_formulas_and_tables_in_order():
    md = (
        "```markdown\n# Title\n\nPara one\nstill one.\n\n$$x^2$$\n\n\\[ y \\]\n\n"
        f"{TABLE}\n\n| a | b |\n|---|---|\n| c | d |\n\n![fig](img.png)\n\nEnd\n```"
    )
    blocks = split_markdown(md)
    assert [(b.kind, b.fine) for b in blocks] == [("text", "text_block"), ("text", "text_block"), ("formula", None),
                                                   ("formula", None), ("table", None), ("table", "md2html_table"),
                                                   ("text", "text_block")]
    assert blocks[1].content == "Para one\nstill one." and blocks[-1].content == "End"


def test_inline_formula_is_an_extra_item_and_stays_in_its_paragraph():
    blocks = split_markdown("Area \\(x^2\\) here.")
    assert [(b.kind, b.fine) for b in blocks] == [("text", "text_block"), ("formula", "equation_inline")]
    assert "x^2" in blocks[0].content


# -- ground truth ----------------------------------------------------------------------------------------------
def test_gt_blocks_merge_truncated_paragraphs_and_flag_ignored_categories():
    gt = page(
        block("header", None, 9, text="Running head"),
        block("text_block", 1, 0, text="A sentence cut "),
        block("text_block", 2, 1, text="across columns."),
        block("figure", 3, 2),
        relations=[{"source_anno_id": 0, "target_anno_id": 1, "relation_type": "truncated"}],
    )
    blocks = gt_blocks(gt)
    assert [(b.category, b.ignored, b.order) for b in blocks] == [("header", True, None), ("text_block", False, 1)]
    assert blocks[1].content == "A sentence cut across columns."


def test_a_truncation_chain_repeats_its_middle_part_as_the_benchmark_does():
    gt = page(block("text_block", 1, 0, text="a "), block("text_block", 2, 1, text="b "),
              block("text_block", 3, 2, text="c"),
              relations=[{"source_anno_id": 0, "target_anno_id": 1, "relation_type": "truncated"},
                         {"source_anno_id": 1, "target_anno_id": 2, "relation_type": "truncated"}])
    assert [b.content for b in gt_blocks(gt)] == ["a b b c"]


# -- matching --------------------------------------------------------------------------------------------------
def test_quick_match_lists_every_gt_index_once():
    matches = quick_match(["abc", "def", "ghi"], ["text_block"] * 3, ["abcdef", "zzz", "ghi"])
    assert sorted(i for m in matches for i in m.gt) == [0, 1, 2]


def test_quick_match_merges_a_paragraph_the_prediction_split_in_two():
    matches = quick_match(["alphabetagammadelta", "zzzzzz"], ["text_block"] * 2, ["alphabeta", "gammadelta", "zzzzzz"])
    assert ((0,), (0, 1)) in [(m.gt, m.pred) for m in matches]


def test_ignored_categories_take_every_close_prediction_out_of_the_pool():
    matches = quick_match(["runninghead", "bodytext"], ["header", "text_block"],
                          ["runninghead", "runninghead", "bodytext"])
    assert [(m.gt, m.pred) for m in matches if m.gt == (1,)] == [((1,), (2,))]


def test_pairs_above_the_rejection_ratio_are_not_kept_by_the_hungarian_step():
    matches = quick_match(["aaaaaaaaaa", "bbbbbbbbbb"], ["text_block"] * 2, ["aaaaaaaaaa", "zzzzzzzzzz"])
    assert ((0,), (0,)) in [(m.gt, m.pred) for m in matches]


# -- text edit distance ----------------------------------------------------------------------------------------
def test_identical_prediction_scores_zero():
    r = evaluate_page("First paragraph here.\n\nSecond one follows.\n\nThird and last.", THREE)
    assert (r["text_edit"], r["reading_order_edit"]) == (0.0, 0.0)


def test_known_edit_count_over_page_length():
    gt = page(block("text_block", 1, 0, text="abcde"), block("text_block", 2, 1, text="fghij"))
    assert evaluate_page("abcde\n\nfghiX", gt)["text_edit"] == pytest.approx(1 / 10)


def test_missed_block_costs_its_full_length():
    gt = page(block("text_block", 1, 0, text="abcde"), block("text_block", 2, 1, text="fghij"))
    assert evaluate_page("abcde", gt)["text_edit"] == pytest.approx(5 / 10)


def test_punctuation_whitespace_and_markdown_markers_are_not_errors():
    gt = page(block("title", 1, 0, text="Results"), block("text_block", 2, 1, text="It works, mostly."))
    assert evaluate_page("## **Results**\n\n- It  works -- mostly!", gt)["text_edit"] == 0.0


def test_ignored_categories_are_matched_but_not_scored():
    gt = page(block("header", None, 0, text="Journal of Tests"), block("text_block", 1, 1, text="Body text."))
    with_header = evaluate_page("Journal of Tests\n\nBody text.", gt)
    without_header = evaluate_page("Body text.", gt)
    assert with_header["text_edit"] == without_header["text_edit"] == 0.0


def test_extra_predicted_paragraphs_are_not_charged_but_counted():
    gt = page(block("text_block", 1, 0, text="Body text."))
    r = evaluate_page("Body text.\n\nSomething the page never said.", gt)
    assert r["text_edit"] == 0.0  # the benchmark scores GT-anchored pairs only


def test_paragraphs_merged_by_the_prediction_still_match():
    assert evaluate_page("First paragraph here. Second one follows.\n\nThird and last.", THREE)["text_edit"] == 0.0


def test_truncated_gt_blocks_match_one_predicted_paragraph():
    gt = page(
        block("text_block", 1, 0, text="A sentence cut "), block("text_block", 2, 1, text="across columns."),
        relations=[{"source_anno_id": 0, "target_anno_id": 1, "relation_type": "truncated"}],
    )
    r = evaluate_page("A sentence cut across columns.", gt)
    assert (r["text_edit"], r["reading_order_edit"]) == (0.0, 0.0)


# -- reading order ---------------------------------------------------------------------------------------------
def test_reversed_reading_order_of_three_blocks():
    r = evaluate_page("Third and last.\n\nSecond one follows.\n\nFirst paragraph here.", THREE)
    assert r["text_edit"] == 0.0  # the content is right ...
    assert r["reading_order_edit"] == pytest.approx(2 / 3)  # ... the order is not: [3,2,1] vs [1,2,3]


def test_swapped_two_blocks_is_order_distance_one():
    gt = page(block("text_block", 1, 0, text="Left column text."), block("text_block", 2, 1, text="Right column."))
    assert evaluate_page("Right column.\n\nLeft column text.", gt)["reading_order_edit"] == 1.0


def test_sequence_order_edit_of_a_permutation():
    assert sequence_order_edit([1, 2, 3]) == 0.0
    assert sequence_order_edit([3, 2, 1]) == pytest.approx(2 / 3)


def test_reading_order_counts_missed_blocks():
    assert reading_order_edit([([1], 0), ([2], 1), ([3], "")]) == pytest.approx(1 / 3)
    assert reading_order_edit([]) is None


# -- formulas and tables ---------------------------------------------------------------------------------------
def test_display_formula_edit_distance():
    gt = page(block("text_block", 1, 0, text="Energy:"), block("equation_isolated", 2, 1, latex="$$\nx^{2}+y^{2}\n$$"))
    assert evaluate_page("Energy:\n\n$$x^{2} + y^{2}$$", gt)["formula_edit"] == 0.0
    assert evaluate_page("Energy:\n\n\\[x^{3}+y^{2}\\]", gt)["formula_edit"] == pytest.approx(1 / 11)
    assert evaluate_page("Energy:", gt)["formula_edit"] == 1.0


def test_table_with_one_changed_cell():
    gt = page(block("table", 1, 0, html=TABLE))
    r = evaluate_page(TABLE.replace("dog", "xyz"), gt)
    assert r["table_teds"] == pytest.approx(5 / 6)  # 6 nodes below <table>, one renamed
    assert r["table_teds_s"] == 1.0


def test_missing_table_scores_zero_and_pipe_tables_count():
    gt = page(block("table", 1, 0, html=TABLE))
    (entry,) = evaluate_page("no table", gt)["tables"]
    assert (entry["matched"], entry["teds"], entry["teds_s"]) == (False, 0.0, 0.0)
    assert evaluate_page("| a | b |\n|---|---|\n| c | dog |", gt)["table_teds"] == 1.0


# -- aggregation -----------------------------------------------------------------------------------------------
def test_evaluate_pages_averages_per_page_ratios_and_lists_missing_pages():
    p1 = page(block("text_block", 1, 0, text="abcde"), name="one.jpg")
    p2 = page(block("text_block", 1, 0, text="abcdefghij"), name="two.jpg")
    p3 = page(block("text_block", 1, 0, text="unseen"), name="three.png")
    r = evaluate_pages({"one": "abcdX", "two": "abcdefghij"}, [p1, p2, p3])
    assert set(r["pages"]) == {"one", "two"} and r["missing_predictions"] == ["three"]
    assert r["text_block"]["ALL_page_avg"] == pytest.approx((1 / 5 + 0) / 2)
    assert r["text_block"]["edit_whole"] == pytest.approx(1 / 15)
    assert r["summary"]["overall"] is None and "CDM" in r["overall_reason"]


def test_overall_formula_matches_the_leaderboard_row():
    # OmniDocBench v1.5 README leaderboard row: DeepSeek-OCR, TextEdit 0.073, CDM 83.37, TEDS 84.97 -> Overall 87.01
    assert overall_score(0.073, 0.8497, 0.8337) == pytest.approx(87.01, abs=0.01)
    assert overall_score(0.073, 0.8497, None) is None


def test_unreadable_inputs_name_the_file_or_page(tmp_path):
    from eval.metrics.omnidocbench import evaluate_pages, load_gt, load_predictions

    (tmp_path / "preds").mkdir()
    (tmp_path / "preds" / "a.md").write_bytes(b"caf\xe9")
    with pytest.raises(ValueError, match="a.md: not UTF-8 text"):
        load_predictions(tmp_path / "preds")
    (tmp_path / "gt.json").write_text("{not json")
    with pytest.raises(ValueError, match="gt.json: not an OmniDocBench JSON file"):
        load_gt(tmp_path / "gt.json")
    with pytest.raises(ValueError, match="page 0 has no page_info.image_path"):
        evaluate_pages({"a": "x"}, [{"layout_dets": []}])
    bad = {"page_info": {"image_path": "a.png"}, "layout_dets": [5]}
    with pytest.raises(ValueError, match="page a: cannot be scored"):
        evaluate_pages({"a": "x"}, [bad])

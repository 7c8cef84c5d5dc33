"""Grounded output -> blocks with pixel boxes; markdown without ref/det spans."""

import pytest

from ocr2.grounding import parse_grounding, strip_grounding

OUT = ("<|ref|>title<|/ref|><|det|>[[0, 0, 999, 99]]<|/det|>\n# Title\n\n"
       "<|ref|>text<|/ref|><|det|>[[100, 200, 500, 400], [10, 10, 20, 20]]<|/det|>\nBody text.")


def test_blocks_carry_labels_text_and_pixel_boxes():
    blocks = parse_grounding(OUT, width=1998, height=999)
    assert [b.label for b in blocks] == ["title", "text"]
    assert blocks[0].text == "# Title"
    assert blocks[0].boxes == [[0.0, 0.0, 1998.0, 99.0]]
    assert len(blocks[1].boxes) == 2


def test_malformed_boxes_keep_the_text():
    blocks = parse_grounding("<|ref|>table<|/ref|><|det|>[[1, 2, 3<|/det|>cells", 100, 100)
    assert blocks[0].boxes == [] and blocks[0].text == "cells"


@pytest.mark.parametrize("det", ["5", "'x'", "{1: 2}", "None", "[" * 5000])
def test_a_box_span_that_is_not_a_box_list_keeps_the_text(det):
    blocks = parse_grounding(f"<|ref|>text<|/ref|><|det|>{det}<|/det|>words", 100, 100)
    assert blocks[0].boxes == [] and blocks[0].text == "words"


def test_strip_grounding_leaves_markdown():
    assert strip_grounding(OUT) == "# Title\n\nBody text."

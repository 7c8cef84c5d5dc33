"""Examples and collation: placeholder counts per view recipe, right padding, packed rows with per-sample positions."""

import json

import pytest
import torch

from data_helpers import page_row
from ocr2 import OCR2Config
from ocr2.data import BatchBuilder, ExampleEncoder, collate, collate_packed
from ocr2.data.examples import Example
from ocr2.grounding import parse_grounding
from ocr2.tokens import IGNORE_INDEX
from ocr2.processing.text import ByteTokenizer

CFG = OCR2Config.from_preset("tiny")  # official view geometry: 256 tokens per 1024 view, 144 per 768 view
TOK = ByteTokenizer()


def _image_positions(ex: Example) -> int:
    return sum(1 for i in ex.input_ids if i == TOK.image_id)


@pytest.mark.parametrize("size,expected", [(768, 144 + 1), (1024, 256 + 1)])
def test_single_view_example_has_one_view_at_the_stage1_resolution(size, expected):
    ex = ExampleEncoder(TOK, CFG, f"single:{size}")(page_row(0))
    assert ex.global_view.shape == (3, size, size) and ex.num_crops == 0
    assert _image_positions(ex) == expected


def test_multi_crop_example_follows_the_official_crop_grid():
    row = page_row(0, size=(800, 1600))  # aspect 1:2 and > 768: the 1 x 2 grid, 2 crops
    ex = ExampleEncoder(TOK, CFG, "multi_crop")(row)
    assert ex.num_crops == 2 and ex.crops.shape == (2, 3, 768, 768) and ex.global_view.shape == (3, 1024, 1024)
    assert _image_positions(ex) == 144 * 2 + 256 + 1


def test_labels_cover_the_answer_only():
    ex = ExampleEncoder(TOK, CFG, "single:768")(page_row(3, markdown="hello"))
    answer = [t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE_INDEX]
    assert TOK.decode(answer) == "hello" + "<｜end▁of▁sentence｜>"


def test_grounded_target_writes_release_style_boxes_that_parse_back():
    blocks = [{"category_type": "title", "poly": [10, 20, 90, 20, 90, 40, 10, 40], "text": "Head", "order": 1},
              {"category_type": "text_block", "poly": [10, 50, 90, 50, 90, 120, 10, 120], "text": "Body", "order": 2},
              {"category_type": "page_number", "poly": [40, 125, 50, 125, 50, 128, 40, 128], "text": "7",
               "order": None}]
    row = page_row(0)
    row["blocks"] = json.dumps(blocks)
    encoder = ExampleEncoder(TOK, CFG, "single:768", target="grounded")
    answer = encoder.answer(row)
    parsed = parse_grounding(answer, 96, 128)
    assert [(b.label, b.text) for b in parsed] == [("title", "# Head"), ("text", "Body")]
    assert parsed[1].boxes[0] == pytest.approx([10, 50, 90, 120], abs=0.2)
    assert "<|grounding|>" in TOK.decode(encoder(row).input_ids)


def _example(n_answer: int, view: int = 768, crops: int = 0, name: str = "x") -> Example:
    ids = [TOK.bos_id] + [TOK.image_id] * 3 + [50] * n_answer
    labels = [IGNORE_INDEX] * 4 + [50] * n_answer
    return Example(name, ids, labels, torch.zeros(3, view, view), torch.ones(crops, 3, 8, 8), crops, view)


def test_padded_batch_is_right_padded_with_masked_labels():
    batch = collate([_example(2, crops=2), _example(5)], TOK.pad_id)
    assert batch["input_ids"].shape == (2, 9)
    assert batch["attention_mask"][0].tolist() == [1] * 6 + [0] * 3
    assert batch["input_ids"][0, 6:].tolist() == [TOK.pad_id] * 3
    assert batch["labels"][0, 6:].tolist() == [IGNORE_INDEX] * 3
    assert batch["global_views"].shape == (2, 3, 768, 768)
    assert batch["crops"].shape == (2, 3, 8, 8) and batch["num_crops"].tolist() == [2, 0]


def test_a_batch_never_mixes_view_sizes():
    with pytest.raises(ValueError, match="mixes view sizes"):
        collate([_example(1, 768), _example(1, 1024)], TOK.pad_id)


def test_packed_rows_restart_positions_and_mark_sequences():
    a, b, c = _example(2, name="a"), _example(3, name="b"), _example(1, name="c")  # lengths 6, 7, 5
    batch = collate_packed([[a, b], [c]], TOK.pad_id)
    assert batch["input_ids"].shape == (2, 13)
    assert batch["position_ids"][0].tolist() == list(range(6)) + list(range(7))
    assert batch["sequence_ids"][0].tolist() == [0] * 6 + [1] * 7
    assert batch["position_ids"][1, :5].tolist() == list(range(5))
    assert batch["sequence_ids"][1].tolist() == [0] * 5 + [-1] * 8
    assert batch["attention_mask"][1].tolist() == [1] * 5 + [0] * 8
    assert batch["labels"][1, 5:].tolist() == [IGNORE_INDEX] * 8
    # Each sample starts with its BOS, whose label is -100: no loss crosses from one sample into the next.
    assert batch["labels"][0, 6].item() == IGNORE_INDEX and batch["input_ids"][0, 6].item() == TOK.bos_id
    # One image per sample, in placeholder order (row by row).
    assert batch["global_views"].shape[0] == 3 and batch["num_crops"].tolist() == [0, 0, 0]


def test_batch_builder_packs_next_fit_within_max_length():
    builder = BatchBuilder(batch_size=2, pad_id=TOK.pad_id, packing=True, max_length=12)
    taken = [builder.add(_example(n, name=str(n))) for n in (2, 3, 1, 4, 2)]  # lengths 6, 7, 5, 8, 6
    assert taken == [True, True, True, False, False]  # rows [6], [7, 5]; the 8 needs a third row
    batch, ids = builder.build()
    assert ids == ["2", "3", "1"] and batch["attention_mask"].sum(1).tolist() == [6, 12]
    assert len(builder) == 0

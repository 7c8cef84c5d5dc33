"""Per-sample prompts: a row's `prompt` replaces the run-wide `data.prompt` for that sample, through the encoder and
through the loader (parquet written with the prompt column)."""

import pytest

from data_helpers import page_row, write_split
from ocr2 import OCR2Config
from ocr2.data import DataConfig, ExampleEncoder, TrainLoader
from ocr2.data.prompts import sample_prompt
from ocr2.data.skips import BadSample
from ocr2.processing.reading import PROMPT_PLAIN_MARKDOWN
from ocr2.processing.text import ByteTokenizer, encode_prompt
from ocr2.tokens import IGNORE_INDEX

CFG = OCR2Config.from_preset("tiny")
TOK = ByteTokenizer()


def _prompt_ids(example) -> list[int]:
    return [t for t, l in zip(example.input_ids, example.labels) if l == IGNORE_INDEX and t != TOK.image_id]


def test_two_rows_with_different_prompts_give_different_prompt_tokens():
    enc = ExampleEncoder(TOK, CFG, views=("single:768",))
    a = enc({**page_row(0), "prompt": "<image>\nFree OCR."})
    b = enc({**page_row(0), "prompt": "<image>\nWhat is the title?"})
    assert _prompt_ids(a) != _prompt_ids(b)
    assert a.labels[-5:] == b.labels[-5:]  # same answer, only the prompt differs
    count = sum(1 for t in a.input_ids if t == TOK.image_id)
    assert a.input_ids[:len(a.input_ids) - len(TOK.encode(page_row(0)["markdown"])) - 1] == \
        encode_prompt(TOK, "<image>\nFree OCR.", [count])


@pytest.mark.parametrize("value", [None, "", "   ", "<image>", "<image>\n"])
def test_no_prompt_of_its_own_leaves_the_run_wide_prompt(value):
    enc = ExampleEncoder(TOK, CFG, views=("single:768",), prompt="free_ocr")
    own = enc({**page_row(0), "prompt": value})
    run = enc(page_row(0))
    assert own.input_ids == run.input_ids
    assert TOK.decode(_prompt_ids(run), skip_special_tokens=True) == "\nFree OCR."


def test_a_prompt_without_the_image_tag_puts_the_page_first():
    assert sample_prompt("Free OCR.") == "<image>\nFree OCR."
    assert sample_prompt("<image>Free OCR.") == "<image>Free OCR."  # ms-swift's form is kept as written


@pytest.mark.parametrize("value,match", [(3, "prompt is int"), ("<image><image>x", "2 <image> tags")])
def test_a_bad_prompt_is_a_skipped_sample_naming_it(value, match):
    enc = ExampleEncoder(TOK, CFG, views=("single:768",))
    with pytest.raises(BadSample, match=match) as e:
        enc({**page_row(7), "prompt": value})
    assert e.value.reason == "bad_prompt" and "p0007" in str(e.value)


def test_the_loader_reads_the_prompt_column(tmp_path):
    rows = [{**page_row(i), "prompt": "<image>\nFree OCR." if i % 2 else None} for i in range(4)]
    write_split(tmp_path, "train", rows)
    loader = TrainLoader(DataConfig(path=str(tmp_path), views=("single:768",), batch_size=1, num_workers=0,
                                    epochs=1, shuffle=False), TOK, CFG)
    prompts = {}
    for batch in loader:
        ids = [t for t, l in zip(batch["input_ids"][0].tolist(), batch["labels"][0].tolist()) if l == IGNORE_INDEX]
        prompts[loader.last_ids[0]] = TOK.decode(ids, skip_special_tokens=True)
    assert prompts == {"p0000": PROMPT_PLAIN_MARKDOWN.replace("<image>", ""), "p0001": "\nFree OCR.",
                       "p0002": PROMPT_PLAIN_MARKDOWN.replace("<image>", ""), "p0003": "\nFree OCR."}

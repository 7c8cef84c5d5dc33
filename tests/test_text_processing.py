"""Tokenizers and the prompt layout: BOS, 144k+256+1 placeholders, prompt text; labels only on the answer."""

import pytest

from ocr2 import OCR2Config
from ocr2.processing.reading import PROMPT_FREE_OCR, PROMPT_MARKDOWN
from ocr2.processing.text import OFFICIAL_SPECIAL_IDS, ByteTokenizer, encode_example, encode_prompt, load_tokenizer


def test_byte_tokenizer_round_trips_text_with_special_tokens():
    tok = ByteTokenizer()
    text = "<|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n# 标题 <td>x</td>"
    assert tok.decode(tok.encode(text)) == text


def test_byte_tokenizer_keeps_the_release_special_token_order():
    tok = ByteTokenizer()
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (0, 1, 2)
    assert tok.special_tokens == list(OFFICIAL_SPECIAL_IDS)


def test_tiny_preset_vocabulary_is_the_byte_tokenizer():
    cfg = OCR2Config.from_preset("tiny")
    tok = ByteTokenizer()
    assert (cfg.decoder.vocab_size, cfg.image_token_id) == (tok.vocab_size, tok.image_id)


@pytest.mark.parametrize("crops", [0, 2, 6])
def test_prompt_layout_is_bos_placeholders_then_text(crops):
    cfg, tok = OCR2Config.from_preset("official"), ByteTokenizer()
    ids = encode_prompt(tok, PROMPT_MARKDOWN, [cfg.image_token_count(crops)])
    n = 144 * crops + 256 + 1
    assert ids[0] == tok.bos_id
    assert ids[1:1 + n] == [tok.image_id] * n
    assert tok.decode(ids[1 + n:]) == "\n<|grounding|>Convert the document to markdown."


def test_labels_cover_only_the_answer_and_eos():
    tok = ByteTokenizer()
    ids, labels = encode_example(tok, PROMPT_FREE_OCR, "hi", [5])
    n_prompt = len(encode_prompt(tok, PROMPT_FREE_OCR, [5]))
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == tok.encode("hi") + [tok.eos_id] == ids[n_prompt:]


def test_image_tag_count_must_match_images():
    with pytest.raises(ValueError, match="1 <image> tags but 2 images"):
        encode_prompt(ByteTokenizer(), PROMPT_MARKDOWN, [257, 257])


def test_byte_tokenizer_saves_and_reloads(tmp_path):
    ByteTokenizer().save(tmp_path)
    assert load_tokenizer(tmp_path).encode("abc") == ByteTokenizer().encode("abc")

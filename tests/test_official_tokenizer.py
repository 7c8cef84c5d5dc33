"""The official tokenizer is read from local files with AutoTokenizer and its special ids are checked.

No hub access: the test writes a stand-in tokenizer folder (a word-level tokenizer.json with the release's special
tokens at the release's ids, 128,827 entries) and loads it the way a real checkpoint folder is loaded.
"""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from ocr2.processing.text import OFFICIAL_SPECIAL_IDS, OfficialTokenizer, encode_prompt, load_tokenizer

WORDS = ["Convert", "the", "document", "to", "markdown.", "Free", "OCR.", "\n"]


def _write(folder, image_id: int = 128815):
    ids = dict(OFFICIAL_SPECIAL_IDS)
    ids["<image>"] = image_id
    by_id = {i: t for t, i in ids.items()} | {100 + n: w for n, w in enumerate(WORDS)}
    vocab = {by_id.get(i, f"<unused_{i}>"): i for i in range(128827)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unused_99>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(list(ids))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<｜begin▁of▁sentence｜>",
                                   eos_token="<｜end▁of▁sentence｜>", pad_token="<｜▁pad▁｜>")
    fast.save_pretrained(str(folder))
    return folder


def test_official_tokenizer_loads_from_local_files_with_release_ids(tmp_path):
    tok = load_tokenizer(_write(tmp_path))
    assert isinstance(tok, OfficialTokenizer)
    assert (tok.bos_id, tok.eos_id, tok.image_id) == (0, 1, 128815)
    assert tok.token_id("<td>") == 128821 and tok.token_id("</td>") == 128822
    ids = encode_prompt(tok, "<image> Free OCR.", [257])
    assert ids[0] == 0 and ids[1:258] == [128815] * 257


def test_wrong_special_ids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="<image>"):
        OfficialTokenizer(_write(tmp_path, image_id=128000))

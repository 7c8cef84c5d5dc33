"""The release's windowed no-repeat n-gram rule."""

import torch

from ocr2.generation import NoRepeatNGram


def test_bans_the_token_that_would_repeat_an_ngram():
    rule = NoRepeatNGram(ngram_size=3, window=90, whitelist=())
    assert rule.banned([5, 6, 7, 1, 5, 6]) == {7}


def test_ngrams_outside_the_window_are_allowed_again():
    rule = NoRepeatNGram(ngram_size=3, window=4, whitelist=())
    assert rule.banned([5, 6, 7, 1, 2, 3, 5, 6]) == set()


def test_whitelisted_table_tags_are_never_banned():
    td = 128821
    assert NoRepeatNGram(ngram_size=2, window=90).banned([9, td, 9]) == set()
    assert NoRepeatNGram(ngram_size=2, window=90, whitelist=()).banned([9, td, 9]) == {td}


def test_processor_sets_banned_logits_to_minus_infinity_per_row():
    rule = NoRepeatNGram(ngram_size=2, window=90, whitelist=())
    logits = torch.zeros(2, 10)
    out = rule(torch.tensor([[3, 4, 3], [1, 2, 5]]), logits)
    assert out[0, 4] == float("-inf") and torch.isfinite(out[1]).all()

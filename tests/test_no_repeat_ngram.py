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


class _ListSpy(torch.Tensor):
    """Records the shape of every tensor converted to Python lists (slices of a spy are spies)."""
    converted: list = []

    def tolist(self):
        _ListSpy.converted.append(tuple(self.shape))
        return super().tolist()


def test_processor_reads_only_the_window_of_a_long_history():
    rule = NoRepeatNGram(ngram_size=4, window=12, whitelist=())
    generated = torch.randint(0, 5, (3, 4096), generator=torch.Generator().manual_seed(0)).as_subclass(_ListSpy)
    _ListSpy.converted.clear()
    rule(generated, torch.zeros(3, 8))
    assert _ListSpy.converted == [(3, 12)]


def test_processor_bans_what_the_whole_history_rule_bans():
    g = torch.Generator().manual_seed(1)
    for n, window in ((3, 8), (4, 3), (2, 90), (5, 5)):
        rule = NoRepeatNGram(ngram_size=n, window=window, whitelist=(2,))
        generated = torch.randint(0, 4, (4, 120), generator=g)  # a small alphabet: many repeats
        for t in range(generated.shape[1] + 1):
            out = rule(generated[:, :t], torch.zeros(4, 4))
            expected = torch.zeros(4, 4)
            for row, tokens in enumerate(generated[:, :t].tolist()):
                expected[row, list(rule.banned(tokens))] = float("-inf")
            assert torch.equal(out, expected), (n, window, t)

"""OCR2Model behaviour: shapes, the official size, the loss, KV-cached and batched greedy decoding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ocr2 import OCR2Config, OCR2Model
from ocr2.tokens import IGNORE_INDEX


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return OCR2Model(OCR2Config.from_preset("tiny")).eval()


def _page(cfg, seed, num_crops=0):
    g = torch.Generator().manual_seed(seed)
    views = torch.rand(1, 3, cfg.global_view_size, cfg.global_view_size, generator=g) * 2 - 1
    crops = torch.rand(num_crops, 3, cfg.crop_size, cfg.crop_size, generator=g) * 2 - 1 if num_crops else None
    return views, crops


def _prompt(cfg, num_crops, text):
    return [cfg.bos_token_id] + [cfg.image_token_id] * cfg.image_token_count(num_crops) + text


def test_official_preset_has_the_release_parameter_count():
    with torch.device("meta"):
        model = OCR2Model(OCR2Config.from_preset("official"))
    assert model.num_parameters() == 3_389_119_360


def test_official_token_budget_per_image():
    cfg = OCR2Config.from_preset("official")
    assert [cfg.image_token_count(k) for k in (0, 2, 6)] == [257, 545, 1121]


def test_logits_shape_with_crops(tiny):
    cfg = tiny.config
    views, crops = _page(cfg, 0, num_crops=2)
    ids = torch.tensor([_prompt(cfg, 2, [40, 41])])
    out = tiny(ids, views, crops, [2])
    assert out.logits.shape == (1, ids.shape[1], cfg.decoder.vocab_size)


def test_loss_counts_only_labelled_tokens(tiny):
    cfg = tiny.config
    views, _ = _page(cfg, 1)
    ids = torch.tensor([_prompt(cfg, 0, [40, 41, 42, 43])])
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, -2:] = ids[0, -2:]
    out = tiny(ids, views, labels=labels)
    expected = F.cross_entropy(tiny(ids, views).logits[0, -3:-1], ids[0, -2:])
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_placeholder_count_mismatch_is_a_clear_error(tiny):
    cfg = tiny.config
    views, _ = _page(cfg, 2)
    ids = torch.tensor([_prompt(cfg, 0, [40])[:-5]])
    with pytest.raises(ValueError, match="placeholders"):
        tiny(ids, views)


def _batch(cfg):
    """Two pages of different prompt lengths, left-padded into one batch."""
    v0, _ = _page(cfg, 3)
    v1, c1 = _page(cfg, 4, num_crops=2)
    p0, p1 = _prompt(cfg, 0, [50, 51, 52]), _prompt(cfg, 2, [60])
    width = max(len(p0), len(p1))
    ids = torch.full((2, width), cfg.pad_token_id)
    mask = torch.zeros(2, width, dtype=torch.long)
    for row, p in enumerate((p0, p1)):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    return dict(input_ids=ids, attention_mask=mask, global_views=torch.cat([v0, v1]), crops=c1,
                num_crops=[0, 2]), (p0, v0, None, [0]), (p1, v1, c1, [2])


def test_kv_cached_generation_equals_uncached(tiny):
    batch, _, _ = _batch(tiny.config)
    cached = tiny.generate(**batch, max_new_tokens=12, eos_token_id=-1, use_cache=True)
    uncached = tiny.generate(**batch, max_new_tokens=12, eos_token_id=-1, use_cache=False)
    assert cached.tolist() == uncached.tolist()


def test_batched_generation_equals_one_page_at_a_time(tiny):
    batch, *singles = _batch(tiny.config)
    together = tiny.generate(**batch, max_new_tokens=10, eos_token_id=-1)
    for row, (prompt, views, crops, num_crops) in enumerate(singles):
        alone = tiny.generate(torch.tensor([prompt]), views, crops, num_crops, max_new_tokens=10, eos_token_id=-1)
        assert together[row].tolist() == alone[0].tolist()


def test_generation_stops_at_eos_and_pads_finished_rows(tiny):
    cfg = tiny.config
    batch, _, _ = _batch(cfg)
    eos = cfg.eos_token_id

    def force_eos(generated, logits):
        # Row 0 ends after 2 tokens, row 1 after 4.
        stop = torch.tensor([generated.shape[1] >= 2, generated.shape[1] >= 4])
        logits[stop] = -1e9
        logits[stop, eos] = 0.0
        return logits

    out = tiny.generate(**batch, max_new_tokens=50, logits_processor=force_eos)
    assert out.shape[1] == 5
    assert out[0, 2].item() == eos and (out[0, 3:] == cfg.pad_token_id).all()
    assert out[1, 4].item() == eos


def test_packed_samples_do_not_see_each_other(tiny):
    """Two text-only samples packed in one row give the same logits as each sample alone."""
    a, b = [0, 40, 41, 42], [0, 50, 51]
    packed = tiny(torch.tensor([a + b]), position_ids=torch.tensor([[0, 1, 2, 3, 0, 1, 2]]),
                  sequence_ids=torch.tensor([[0, 0, 0, 0, 1, 1, 1]])).logits
    alone_a = tiny(torch.tensor([a])).logits
    alone_b = tiny(torch.tensor([b])).logits
    assert torch.allclose(packed[0, :4], alone_a[0], atol=1e-5)
    assert torch.allclose(packed[0, 4:], alone_b[0], atol=1e-5)

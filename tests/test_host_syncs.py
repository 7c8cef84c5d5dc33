"""Host-sync budget of the hot loops, counted on CPU with `tests/sync_ops.SyncCounter` (ops that sync on CUDA).

Budget: a training forward syncs 3 times whatever the depth (the placeholder count check, the attention mask's
all-real check, the loss's label selection) and a decoding step once (the mask check); no layer syncs. MoE
dispatch used `bincount` (2 syncs per MoE layer on CUDA)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.modeling.decoder import KVCache, positions_from_mask
from ocr2.modeling.moe import MoE
from ocr2.tokens import IGNORE_INDEX

from tests.sync_ops import SyncCounter


def _model(decoder_layers: int) -> OCR2Model:
    cfg = OCR2Config.from_preset("tiny")
    cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, num_layers=decoder_layers))
    torch.manual_seed(0)
    model = OCR2Model(cfg)
    for m in model.modules():
        if isinstance(m, MoE):
            m.experts.grouped = True  # CUDA's choice (sm80+): one grouped GEMM, no per-expert loop
    return model


def _training_batch(cfg):
    n = cfg.image_token_count(0)
    ids = torch.tensor([[cfg.bos_token_id] + [cfg.image_token_id] * n + list(range(40, 60))] * 2)
    labels = ids.clone()
    labels[:, :1 + n] = IGNORE_INDEX
    views = torch.rand(2, 3, cfg.global_view_size, cfg.global_view_size, generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0  # right padding, as the collator pads
    return dict(input_ids=ids, global_views=views, labels=labels, attention_mask=mask)


def test_crop_counts_are_read_back_once_not_per_image():
    """The collator's num_crops is a tensor the trainer moves to the device; `tolist` is one sync (not counted by
    SyncCounter), `int()` per image was one each."""
    model = _model(2).train()
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    views = torch.rand(2, 3, cfg.global_view_size, cfg.global_view_size, generator=g)
    crops = torch.rand(4, 3, cfg.crop_size, cfg.crop_size, generator=g)
    with SyncCounter() as syncs:
        model.image_embeddings(views, crops, torch.tensor([2, 2]))
    assert syncs.total == 0, dict(syncs.counts)


@pytest.mark.parametrize("layers", [2, 4])
def test_training_forward_syncs_three_times_at_any_depth(layers):
    model = _model(layers).train()
    batch = _training_batch(model.config)
    with SyncCounter() as syncs:
        model(**batch)
    assert syncs.total == 3, dict(syncs.counts)


@pytest.mark.parametrize("layers", [2, 4])
def test_decoding_step_syncs_once_at_any_depth(layers):
    model = _model(layers).eval()
    emb = model.decoder.embed_tokens(torch.randint(10, 50, (2, 12), generator=torch.Generator().manual_seed(0)))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, :4] = False  # a left-padded prompt
    cache = KVCache(len(model.decoder.layers), capacity=16)
    with torch.inference_mode():
        model(None, inputs_embeds=emb, attention_mask=mask, position_ids=positions_from_mask(mask, 12), cache=cache,
              logits_to_keep=1)
        mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.bool)], dim=1)
        with SyncCounter() as syncs:
            model(None, inputs_embeds=emb[:, :1], attention_mask=mask, position_ids=positions_from_mask(mask, 1),
                  cache=cache, logits_to_keep=1)
    assert syncs.total == 1, dict(syncs.counts)


def test_moe_dispatch_does_not_sync():
    moe = _model(2).decoder.layers[1].mlp.train()
    with SyncCounter() as syncs:
        moe(torch.randn(2, 9, moe.cfg.hidden_size))
    assert syncs.total == 0, dict(syncs.counts)

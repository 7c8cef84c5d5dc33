"""The loss runs the head only on labelled positions, in checkpointed chunks: the same value and gradients as the
old formula (cross-entropy over the full fp32 logits), and no saved tensor that grows with the vocabulary."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ocr2 import OCR2Config, OCR2Model
from ocr2.modeling import lm_loss
from ocr2.tokens import IGNORE_INDEX


def _tiny(vocab: int | None = None) -> OCR2Model:
    cfg = OCR2Config.from_preset("tiny")
    if vocab is not None:
        cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, vocab_size=vocab))
    torch.manual_seed(0)
    return OCR2Model(cfg).train()


def _batch(cfg, rows=2, length=40, answer=9):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 200, (rows, length), generator=g)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, -answer:] = ids[:, -answer:]
    labels[1, -2] = IGNORE_INDEX  # a hole inside the answer
    return ids, labels


def _old_formula(model, ids, labels):
    logits = model(ids).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX)


@pytest.mark.parametrize("chunk", [1, 4, 1024])
def test_loss_and_gradients_equal_the_full_logits_formula(monkeypatch, chunk):
    monkeypatch.setattr(lm_loss.label_loss, "__defaults__", (chunk,))
    model = _tiny().eval()  # no balance loss: compare the LM loss alone
    ids, labels = _batch(model.config)
    ref = _old_formula(model, ids, labels)
    ref_grads = torch.autograd.grad(ref, [model.lm_head.weight, model.decoder.norm.weight])
    got = model(ids, labels=labels).lm_loss
    got_grads = torch.autograd.grad(got, [model.lm_head.weight, model.decoder.norm.weight])
    assert abs(got.item() - ref.item()) <= 1e-6 * abs(ref.item())
    assert max((a - b).abs().max().item() for a, b in zip(got_grads, ref_grads)) <= 1e-6


def test_no_labelled_position_gives_nan_like_the_mean_of_nothing():
    model = _tiny().eval()
    ids, _ = _batch(model.config)
    assert torch.isnan(model(ids, labels=torch.full_like(ids, IGNORE_INDEX)).lm_loss)


def test_with_labels_no_logits_are_returned():
    model = _tiny()
    ids, labels = _batch(model.config)
    assert model(ids, labels=labels).logits is None


def _saved_bytes(model, ids, labels) -> int:
    """Bytes of the distinct non-parameter storages autograd saves for backward during one forward."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(ids, labels=labels)
    out.loss.backward()
    return sum(seen.values())


def test_saved_tensors_do_not_grow_with_the_vocabulary():
    """Before: log-softmax's (positions x vocab) fp32 output was saved, 4 bytes per position per vocab entry."""
    small, large = _tiny(vocab=1024), _tiny(vocab=8192)
    ids, labels = _batch(small.config)
    assert _saved_bytes(large, ids, labels) == _saved_bytes(small, ids, labels)

"""`OCR2Model.set_gradient_checkpointing` covers the SAM tokenizer (stage 1 trains it), the encoder and the decoder;
checkpointed gradients equal plain ones; a frozen module saves nothing for backward, checkpointed or not."""

from __future__ import annotations

import pytest
import torch

from ocr2 import OCR2Config, OCR2Model


def _tiny() -> OCR2Model:
    torch.manual_seed(0)
    return OCR2Model(OCR2Config.from_preset("tiny")).train()


def _views(cfg, n=1):
    return torch.rand(n, 3, cfg.global_view_size, cfg.global_view_size, generator=torch.Generator().manual_seed(0))


def _saved_bytes(module, run) -> int:
    """Distinct non-parameter storages autograd saves for backward (what a checkpointed block hides is not seen)."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    if out.requires_grad:
        out.float().pow(2).mean().backward()
    return sum(seen.values())


def test_one_call_sets_all_three_stacks():
    model = _tiny()
    model.set_gradient_checkpointing(True)
    assert (model.vision_tokenizer.gradient_checkpointing, model.encoder.gradient_checkpointing,
            model.decoder.gradient_checkpointing) == (True, True, True)
    model.set_gradient_checkpointing(False)
    assert not (model.vision_tokenizer.gradient_checkpointing or model.encoder.gradient_checkpointing
                or model.decoder.gradient_checkpointing)


def test_checkpointed_tokenizer_keeps_only_each_blocks_input():
    """Checkpointed, the tokenizer saves what a tokenizer with no blocks saves plus one (B, h, w, C) input per block."""
    model = _tiny()
    tok = model.vision_tokenizer
    views = _views(model.config)
    tok.gradient_checkpointing = True
    checkpointed = _saved_bytes(tok, lambda: tok(views))
    grid = tok.patch_embed(views).numel() * 4
    depth = len(tok.blocks)
    tok.blocks = torch.nn.ModuleList()
    no_blocks = _saved_bytes(tok, lambda: tok(views))
    assert checkpointed == no_blocks + depth * grid


def test_checkpointed_tokenizer_gradients_equal_plain():
    model = _tiny()
    tok, views = model.vision_tokenizer, _views(model.config)
    grads = []
    for flag in (False, True):
        tok.gradient_checkpointing = flag
        tok.zero_grad()
        tok(views).pow(2).mean().backward()
        grads.append([p.grad.clone() for p in tok.parameters()])
    assert max((a - b).abs().max().item() for a, b in zip(*grads)) <= 1e-6


@pytest.mark.parametrize("checkpointing", [False, True])
def test_frozen_tokenizer_saves_nothing(checkpointing):
    model = _tiny()
    tok = model.vision_tokenizer.requires_grad_(False)
    tok.gradient_checkpointing = checkpointing
    assert _saved_bytes(tok, lambda: tok(_views(model.config))) == 0


def _retained_bytes(run) -> int:
    """Bytes of saved tensors still held once the forward returned (what backward would keep alive)."""
    import gc
    import weakref

    saved = []

    def pack(t):
        saved.append((weakref.ref(t), t.untyped_storage().nbytes()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    gc.collect()
    alive = sum(n for ref, n in saved if ref() is not None)
    del out
    return alive


@pytest.mark.parametrize("checkpointing", [False, True])
def test_frozen_vision_path_keeps_nothing_for_backward(checkpointing):
    """Stage 3 freezes tokenizer, encoder and projector: their forward must leave nothing saved behind."""
    model = _tiny()
    for module in (model.vision_tokenizer, model.encoder, model.projector):
        module.requires_grad_(False)
    model.set_gradient_checkpointing(checkpointing)
    assert _retained_bytes(lambda: model.encode_views(_views(model.config))) == 0

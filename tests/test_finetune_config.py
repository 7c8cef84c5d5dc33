"""model=checkpoint (the init_from checkpoint's config), the tokenizer/model check, and what LoRA adapts."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hydra import compose, initialize_config_dir

from configs import CONFIG_DIR
from ocr2 import OCR2Config, OCR2Model
from ocr2.lora import LoraSettings, apply_lora
from ocr2.processing.text import ByteTokenizer
from train.builders import build_model_config
from train.init_model import check_compatible


def _compose(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _other_size() -> OCR2Config:
    cfg = OCR2Config.from_preset("tiny")
    return dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, num_layers=2, hidden_size=48))


def test_model_checkpoint_is_the_checkpoints_config():
    ckpt = _other_size()
    assert build_model_config(_compose(["model=checkpoint"]).model, ckpt) == ckpt


def test_a_field_set_under_model_checkpoint_changes_only_that_field():
    ckpt = _other_size()
    got = build_model_config(_compose(["model=checkpoint", "model.encoder.mask=bidirectional_flow"]).model, ckpt)
    assert got == dataclasses.replace(ckpt, encoder=dataclasses.replace(ckpt.encoder, mask="bidirectional_flow"))


def test_model_checkpoint_without_init_from_is_an_error():
    with pytest.raises(ValueError, match="init_from is not set"):
        build_model_config(_compose(["model=checkpoint"]).model, None)


def test_finetune_experiments_take_the_checkpoints_config():
    for experiment in ("finetune", "finetune_lora"):
        assert _compose([f"experiment={experiment}", "init_from=x"]).model.preset == "checkpoint"


class _OfficialIds:
    """The release's special ids and vocabulary size, without the real tokenizer files."""
    bos_id, eos_id, pad_id, image_id, vocab_size = 0, 1, 2, 128815, 128827


def test_tokenizer_and_model_mismatch_names_both_sides():
    with pytest.raises(ValueError) as e:
        check_compatible(_OfficialIds(), OCR2Config.from_preset("tiny"), "from /ckpt", "model=tiny config")
    msg = str(e.value)
    assert "from /ckpt" in msg and "model=tiny config" in msg
    assert "128827 ids but the decoder vocabulary is 271" in msg
    assert "<image> is id 128815 in the tokenizer but 3 in the model config" in msg
    assert "model=checkpoint" in msg  # the fix


def test_matching_tokenizer_and_model_pass():
    check_compatible(ByteTokenizer(), OCR2Config.from_preset("tiny"), "byte", "model=tiny config")


# ---------------------------------------------------------------------------------------------------------- LoRA
def _adapted(settings: LoraSettings) -> set[str]:
    torch.manual_seed(0)
    model = OCR2Model(OCR2Config.from_preset("tiny"))
    apply_lora(model, settings)
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_lora_defaults_adapt_decoder_attention_dense_shared_and_routed_experts_only():
    trainable = _adapted(LoraSettings(r=2))
    assert trainable and all("lora_" in n for n in trainable)
    assert all(n.startswith("decoder.") for n in trainable)
    for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "layers.0.mlp.gate_proj", "shared_experts.down_proj", "mlp.experts."):
        assert any(part in n for n in trainable), part


def test_lora_encoder_option_adds_the_encoder_never_the_vision_tokenizer():
    trainable = _adapted(LoraSettings(r=2, encoder=True))
    assert any(n.startswith("encoder.layers.") for n in trainable)
    assert not any(n.startswith("vision_tokenizer.") for n in trainable)


def test_lora_dropout_with_expert_adapters_is_refused():
    with pytest.raises(ValueError, match="lora.dropout=0.1 with lora.experts=true"):
        LoraSettings(dropout=0.1)


# ------------------------------------------------------------------------------ init_from in every layout
@pytest.mark.parametrize("layout", ["ocr2", "official", "hf"])
def test_init_from_any_layout_gives_the_checkpoints_config_and_weights(tmp_path, layout):
    from ocr2.layouts import write_layout
    from train.init_model import build_start

    torch.manual_seed(0)
    cfg = OCR2Config.from_preset("tiny")  # the release's view geometry: every layout can hold it
    source = OCR2Model(cfg)
    write_layout(layout, cfg, source.state_dict(), tmp_path / layout)
    start = build_start(_compose(["model=checkpoint", f"init_from={tmp_path / layout}"]))
    assert start.config.decoder == cfg.decoder and start.config.vision == cfg.vision
    key = "decoder.layers.1.mlp.experts.gate_proj"
    assert torch.equal(start.model.state_dict()[key], source.state_dict()[key])


def test_a_bf16_run_reads_the_checkpoint_straight_into_bf16_and_keeps_one_copy(tmp_path, monkeypatch):
    from train.init_model import build_start

    torch.manual_seed(0)
    OCR2Model(OCR2Config.from_preset("tiny")).save_pretrained(tmp_path / "ckpt")
    built = []
    real_init = OCR2Model.__init__
    monkeypatch.setattr(OCR2Model, "__init__", lambda self, c: (built.append(c), real_init(self, c))[1])
    start = build_start(_compose(["model=checkpoint", f"init_from={tmp_path / 'ckpt'}"]), torch.bfloat16)
    assert {p.dtype for p in start.model.parameters()} == {torch.bfloat16}
    assert len(built) == 1  # the meta-device build inside from_pretrained; no second fp32 model

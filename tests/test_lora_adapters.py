"""LoRA adapter folders: PEFT's own format, and a folder loads as one merged model with the adapted logits."""

from __future__ import annotations

import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.lora import ADAPTER_WEIGHTS, LoraSettings, apply_lora, save_adapter


def _inputs(cfg: OCR2Config):
    g = torch.Generator().manual_seed(1)
    n = cfg.image_token_count(0)
    ids = torch.cat([torch.tensor([[cfg.bos_token_id]]), torch.full((1, n), cfg.image_token_id),
                     torch.randint(20, 200, (1, 12), generator=g)], dim=1)
    views = torch.rand((1, 3, cfg.global_view_size, cfg.global_view_size), generator=g) * 2 - 1
    return dict(input_ids=ids, global_views=views, num_crops=[0])


def _adapter_folder(tmp_path):
    """(adapter folder, logits of the adapted model): random non-zero adapters on a tiny model saved as a base."""
    torch.manual_seed(0)
    cfg = OCR2Config.from_preset("tiny")
    model = OCR2Model(cfg).eval()
    model.save_pretrained(tmp_path / "base")
    peft_model = apply_lora(model, LoraSettings(r=2), base=str(tmp_path / "base"))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero (no change); random B makes the merge visible
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
        expected = model(**_inputs(cfg)).logits
    folder = tmp_path / "adapter"
    save_adapter(peft_model, folder)
    cfg.save(folder / "config.json")
    return folder, expected


def test_adapter_folder_is_peft_format(tmp_path):
    from peft import PeftConfig
    from safetensors import safe_open

    folder, _ = _adapter_folder(tmp_path)
    config = PeftConfig.from_pretrained(str(folder))
    assert config.peft_type == "LORA" and config.r == 2
    assert config.base_model_name_or_path == str(tmp_path / "base")
    with safe_open(str(folder / ADAPTER_WEIGHTS), framework="pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("base_model.model.") and "lora_" in k for k in keys)


def test_adapter_folder_loads_merged_with_the_adapted_logits(tmp_path):
    folder, expected = _adapter_folder(tmp_path)
    merged = OCR2Model.from_pretrained(folder)
    assert type(merged) is OCR2Model
    assert not any("lora_" in n or "base_layer" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        got = merged(**_inputs(merged.config)).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_merged_weights_differ_from_the_base(tmp_path):
    folder, _ = _adapter_folder(tmp_path)
    merged, base = OCR2Model.from_pretrained(folder), OCR2Model.from_pretrained(tmp_path / "base")
    key = "decoder.layers.1.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[key], base.state_dict()[key])
    key = "decoder.layers.1.mlp.experts.gate_proj"
    assert not torch.equal(merged.state_dict()[key], base.state_dict()[key])

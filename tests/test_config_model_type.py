"""ocr2's own config.json says whose it is (`model_type: ocr2`); files written before it did still load."""

from __future__ import annotations

import json

import pytest
import torch

from ocr2 import OCR2Config, OCR2Model


def test_saved_config_json_carries_model_type_ocr2(tmp_path):
    OCR2Config.from_preset("tiny").save(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "ocr2"


def test_a_config_json_with_model_type_loads_to_the_same_config(tmp_path):
    cfg = OCR2Config.from_preset("tiny")
    cfg.save(tmp_path / "config.json")
    assert OCR2Config.load(tmp_path / "config.json") == cfg


def test_an_older_config_json_without_model_type_still_loads(tmp_path):
    cfg = OCR2Config.from_preset("tiny")
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))  # what save wrote before model_type
    assert OCR2Config.load(tmp_path / "config.json") == cfg


def test_an_older_model_directory_without_model_type_still_loads(tmp_path):
    torch.manual_seed(0)
    model = OCR2Model(OCR2Config.from_preset("tiny")).eval()
    model.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(model.config.to_dict()))
    ids = torch.tensor([[0, 20, 21]])
    assert torch.equal(OCR2Model.from_pretrained(tmp_path)(ids).logits, model(ids).logits)


def test_another_model_type_is_refused_naming_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "deepseek_vl_v2", "language_config": {}}))
    with pytest.raises(ValueError, match="model_type is 'deepseek_vl_v2', not 'ocr2'"):
        OCR2Config.load(tmp_path / "config.json")


def test_to_dict_stays_the_plain_fields():
    # Hydra and OmegaConf read to_dict(); model_type belongs to the file only.
    assert "model_type" not in OCR2Config.from_preset("tiny").to_dict()

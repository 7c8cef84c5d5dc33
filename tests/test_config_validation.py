"""Configs are validated when read: a wrong type names the field and the expected type; a config.json missing a
section is refused instead of silently becoming the 3.4-billion-parameter official default."""

import json

import pytest

from ocr2 import OCR2Config, OCR2Model
from ocr2.weights import CheckpointError


@pytest.mark.parametrize("field,value,expected", [
    ({"decoder": {"num_layers": "12"}}, "decoder.num_layers", "expected int, got '12'"),
    ({"encoder": {"rope_theta": "big"}}, "encoder.rope_theta", "expected float"),
    ({"vision": {"global_attn_indexes": [1.5]}}, "vision.global_attn_indexes", "expected a tuple of ints"),
    ({"global_view_size": True}, "global_view_size", "expected int, got True"),
])
def test_a_wrong_type_names_the_field(field, value, expected):
    with pytest.raises(ValueError, match=f"{value}: {expected}"):
        OCR2Config.from_dict(field)


def test_a_float_field_takes_an_int():
    assert OCR2Config.from_dict({"encoder": {"rope_theta": 10000}}).encoder.rope_theta == 10000


def test_a_config_json_missing_a_section_is_refused(tmp_path):
    data = OCR2Config.from_preset("tiny").to_dict()
    del data["decoder"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="config.json: not a complete ocr2 config: missing \\['decoder'\\]"):
        OCR2Config.load(tmp_path / "config.json")


def test_a_checkpoint_with_a_bad_config_fails_before_building_a_model(tmp_path):
    OCR2Model(OCR2Config.from_preset("tiny")).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["decoder"]["hidden_size"] = "64"
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises((ValueError, CheckpointError), match="decoder.hidden_size: expected int"):
        OCR2Model.from_pretrained(tmp_path)

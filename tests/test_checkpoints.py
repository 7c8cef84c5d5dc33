"""Checkpoints: our format round-trips; the official and port layouts load to the same logits."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from ocr2 import OCR2Config, OCR2Model
from ocr2.weights import CheckpointError
from port_oracle import ours_from_port, tiny_port_model


def _inputs(cfg: OCR2Config, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    views = torch.rand(1, 3, cfg.global_view_size, cfg.global_view_size, generator=g) * 2 - 1
    ids = torch.tensor([[cfg.bos_token_id] + [cfg.image_token_id] * cfg.image_token_count(0) + [20, 21, 22]])
    return ids, views


@pytest.fixture(scope="module")
def port_pair():
    port = tiny_port_model(seed=3)
    return port, ours_from_port(port)


def test_save_and_load_round_trip_gives_identical_logits(tmp_path):
    torch.manual_seed(0)
    model = OCR2Model(OCR2Config.from_preset("tiny")).eval()
    model.save_pretrained(tmp_path)
    loaded = OCR2Model.from_pretrained(tmp_path)
    ids, views = _inputs(model.config)
    assert loaded.config == model.config
    assert torch.equal(loaded(ids, views).logits, model(ids, views).logits)


def test_sharded_save_round_trips(tmp_path):
    torch.manual_seed(0)
    model = OCR2Model(OCR2Config.from_preset("tiny")).eval()
    model.save_pretrained(tmp_path, max_shard_size=200_000)
    assert (tmp_path / "model.safetensors.index.json").exists()
    loaded = OCR2Model.from_pretrained(tmp_path)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_official_layout_checkpoint_loads_to_port_logits(tmp_path, port_pair):
    """The port's save_pretrained writes the official hub key layout (model.sam_model.*, model.qwen2_model.*,
    per-expert tensors, model.view_seperator)."""
    port, ours = port_pair
    port.save_pretrained(tmp_path)
    loaded = OCR2Model.from_pretrained(tmp_path, attn_implementation="eager")
    ids, views = _inputs(loaded.config)
    ids[ids == loaded.config.image_token_id] = port.config.image_token_id
    assert torch.equal(loaded(ids, views).logits, ours(ids, views).logits)


def test_port_layout_checkpoint_loads_to_port_logits(tmp_path, port_pair):
    port, ours = port_pair
    save_file({k: v.contiguous() for k, v in port.state_dict().items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(port.config.to_dict()))
    loaded = OCR2Model.from_pretrained(tmp_path, attn_implementation="eager")
    ids, views = _inputs(loaded.config)
    assert torch.equal(loaded(ids, views).logits, ours(ids, views).logits)


def test_load_in_bfloat16_reads_tensors_in_that_dtype(tmp_path):
    OCR2Model(OCR2Config.from_preset("tiny")).save_pretrained(tmp_path)
    loaded = OCR2Model.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    model = OCR2Model(OCR2Config.from_preset("tiny"))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    del state["decoder.norm.weight"]
    state["decoder.bogus.weight"] = torch.zeros(2)
    model.config.save(tmp_path / "config.json")
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        OCR2Model.from_pretrained(tmp_path)
    assert "decoder.norm.weight" in str(err.value) and "decoder.bogus.weight" in str(err.value)


def test_corrupt_weights_file_is_named_in_the_error(tmp_path):
    OCR2Config.from_preset("tiny").save(tmp_path / "config.json")
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        OCR2Model.from_pretrained(tmp_path)

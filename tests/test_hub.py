"""Hub ids resolve from the local huggingface_hub cache, never the network (a cache layout built by hand)."""

from __future__ import annotations

import pytest
import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.hub import HubCheckpointError, is_hub_id, snapshot_dir
from ocr2.weights import resolve_model_dir

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache_with_model(root):
    """`models--org--tiny/snapshots/<commit>/` holding a tiny checkpoint, `refs/main` naming the commit."""
    repo = root / "models--org--tiny"
    snap = repo / "snapshots" / COMMIT
    torch.manual_seed(0)
    OCR2Model(OCR2Config.from_preset("tiny")).save_pretrained(snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snap


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    root = tmp_path / "hub"
    snap = _cache_with_model(root)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return snap


def test_hub_ids_are_told_from_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert is_hub_id("deepseek-ai/DeepSeek-OCR-2") and is_hub_id("deepseek-ai/DeepSeek-OCR-2@main")
    assert not is_hub_id("runs/mistyped_run")  # its first component is a local folder: a local path
    assert not is_hub_id(str(tmp_path))


def test_a_cached_hub_id_resolves_to_its_snapshot_offline(hub_cache):
    assert snapshot_dir("org/tiny") == hub_cache
    assert resolve_model_dir("org/tiny") == hub_cache
    assert resolve_model_dir(f"org/tiny@{COMMIT}") == hub_cache


def test_a_cached_hub_id_loads_as_a_model(hub_cache):
    model = OCR2Model.from_pretrained(resolve_model_dir("org/tiny"))
    assert model.config.decoder.vocab_size == OCR2Config.from_preset("tiny").decoder.vocab_size


def test_an_uncached_hub_id_offline_is_one_clear_error(hub_cache):
    with pytest.raises(HubCheckpointError, match="org/absent: not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve_model_dir("org/absent")

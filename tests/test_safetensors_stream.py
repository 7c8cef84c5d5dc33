"""The streaming safetensors writer: files the safetensors library reads back exactly, shards with an index."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from ocr2.safetensors_stream import INDEX_NAME, Entry, stored_float_dtype, write_sharded


def _entry(name: str, t: torch.Tensor) -> Entry:
    return Entry(name, tuple(t.shape), t.dtype, lambda: t)


def _read_all(directory) -> dict[str, torch.Tensor]:
    index = json.loads((directory / INDEX_NAME).read_text())
    out = {}
    for name, file in index["weight_map"].items():
        with safe_open(str(directory / file), framework="pt") as h:
            out[name] = h.get_tensor(name)
    return out


def test_tensors_of_every_kind_read_back_exactly(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {"f32": torch.randn(3, 5, generator=g), "bf16": torch.randn(7, generator=g).to(torch.bfloat16),
               "f16": torch.randn(2, 2, 2, generator=g).half(), "i64": torch.arange(6).reshape(2, 3),
               "scalar": torch.tensor(1.5), "empty": torch.zeros(0, 4), "flag": torch.tensor([True, False])}
    write_sharded(tmp_path, [_entry(k, v) for k, v in tensors.items()])
    back = _read_all(tmp_path)
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k


def test_views_of_one_tensor_are_written_without_copies(tmp_path):
    # save_file refuses tensors that share storage; the per-expert slices of a stacked tensor do.
    stacked = torch.randn(4, 3, 2)
    write_sharded(tmp_path, [_entry(f"e{i}", stacked[i]) for i in range(4)])
    back = _read_all(tmp_path)
    assert all(torch.equal(back[f"e{i}"], stacked[i]) for i in range(4))


def test_files_carry_the_pt_format_metadata_transformers_requires(tmp_path):
    (path,) = write_sharded(tmp_path, [_entry("w", torch.ones(2))])
    with safe_open(str(path), framework="pt") as h:
        assert h.metadata() == {"format": "pt"}


def test_max_shard_size_splits_files_and_the_index_names_each_tensors_file(tmp_path):
    entries = [_entry(f"w{i}", torch.full((10,), float(i))) for i in range(5)]  # 40 bytes each
    files = write_sharded(tmp_path, entries, max_shard_size=100)
    assert [f.name for f in files] == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert index["metadata"]["total_size"] == 200
    assert index["weight_map"] == {"w0": files[0].name, "w1": files[0].name, "w2": files[1].name,
                                   "w3": files[1].name, "w4": files[2].name}
    assert all(torch.equal(t, torch.full((10,), float(i))) for i, t in enumerate(_read_all(tmp_path).values()))


def test_a_rewrite_removes_the_shards_of_an_earlier_one(tmp_path):
    write_sharded(tmp_path, [_entry(f"w{i}", torch.ones(10)) for i in range(3)], max_shard_size=40)
    write_sharded(tmp_path, [_entry("w", torch.ones(10))])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([INDEX_NAME, "model-00001-of-00001.safetensors"])


def test_a_tensor_made_with_another_shape_than_announced_is_an_error_naming_it(tmp_path):
    bad = Entry("decoder.w", (2, 2), torch.float32, lambda: torch.ones(3))
    with pytest.raises(ValueError, match="decoder.w was announced as torch.float32 \\(2, 2\\)"):
        write_sharded(tmp_path, [bad])


def test_a_name_written_twice_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="written twice: \\['w'\\]"):
        write_sharded(tmp_path, [_entry("w", torch.ones(1)), _entry("w", torch.ones(1))])


def test_stored_float_dtype_is_the_dtype_most_tensors_have(tmp_path):
    files = write_sharded(tmp_path, [_entry("a", torch.ones(1, dtype=torch.bfloat16)),
                                     _entry("b", torch.ones(1, dtype=torch.bfloat16)), _entry("c", torch.ones(1)),
                                     _entry("i", torch.ones(1, dtype=torch.int64))])
    assert stored_float_dtype(files) == torch.bfloat16

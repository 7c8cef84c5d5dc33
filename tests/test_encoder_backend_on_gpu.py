"""On CUDA the encoder's default `sdpa` and `auto` run mask-free kernels (a dense boolean mask with GQA leaves CUDA's
SDPA only its math kernel); on CPU both keep what they were (dense `sdpa`, the parity reference; `auto` the split).
Checked with a stand-in for a CUDA tensor: `resolve_backend` reads only its device and dtype."""

from __future__ import annotations

import types

import pytest
import torch

from ocr2.modeling.attention import resolve_backend


def _on(device: str, dtype=torch.bfloat16):
    return types.SimpleNamespace(device=torch.device(device), dtype=dtype)


@pytest.mark.parametrize("backend", ["sdpa", "auto"])
def test_encoder_on_cuda_resolves_to_the_mask_free_split(backend):
    assert resolve_backend(backend, _on("cuda"), "encoder") == "sdpa_split"  # flash-attn is not installed here


def test_cpu_resolution_is_unchanged():
    q = torch.zeros(1, 1, 2, 4)
    assert [resolve_backend(b, q, r) for b in ("sdpa", "auto") for r in ("encoder", "decoder")] == [
        "sdpa", "sdpa", "sdpa_split", "sdpa"]


def test_the_decoder_keeps_sdpa_on_cuda():
    assert resolve_backend("sdpa", _on("cuda"), "decoder") == "sdpa"

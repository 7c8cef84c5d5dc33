"""`flash_available` refuses GPUs below sm80 (flash-attn 2 imports there but cannot launch), so `auto` falls back."""

from __future__ import annotations

import types

import pytest
import torch

from ocr2.modeling import attention


@pytest.fixture
def installed(monkeypatch):
    monkeypatch.setattr(attention, "_flash_module", lambda: types.SimpleNamespace())


@pytest.mark.parametrize("capability, expected", [((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_flash_needs_sm80(installed, monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert attention.flash_available("cuda:0", torch.bfloat16) is expected

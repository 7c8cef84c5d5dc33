"""RoPE frequencies stay fp32 in every path: `.to(bf16)`, DeepSpeed's bf16 engine, `from_pretrained`.

A bf16 `inv_freq` shifts rotations by radians at long range (1.4 rad at position 1130 for the decoder), while
`from_pretrained` rebuilds the buffer in fp32: training and inference would see different positions."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.modeling.transformer import RotaryEmbedding

from tests.train_harness import ROOT, env

POSITIONS = torch.arange(8192)


def _angles(rotary: RotaryEmbedding) -> torch.Tensor:
    cos, sin = rotary(POSITIONS, torch.float32)
    return torch.atan2(sin, cos)


def _rotaries(model):
    return [m for m in model.modules() if isinstance(m, RotaryEmbedding)]


def test_to_bf16_keeps_the_rotations_of_fp32():
    torch.manual_seed(0)
    model = OCR2Model(OCR2Config.from_preset("tiny"))
    before = [_angles(r) for r in _rotaries(model)]
    model.to(torch.bfloat16)
    assert all(r.inv_freq.dtype == torch.float32 for r in _rotaries(model))
    phase_error = max((a - b).abs().max().item() for a, b in zip(before, (_angles(r) for r in _rotaries(model))))
    assert phase_error == 0.0


def test_a_cast_behind_apply_still_rotates_in_fp32():
    rotary = RotaryEmbedding(64, 10_000.0)
    before = _angles(rotary)
    rotary.inv_freq.data = rotary.inv_freq.data.to(torch.bfloat16)  # what a blanket buffer cast does
    assert torch.equal(_angles(rotary), before)


def test_from_pretrained_in_bf16_has_fp32_frequencies(tmp_path):
    torch.manual_seed(0)
    OCR2Model(OCR2Config.from_preset("tiny")).save_pretrained(tmp_path)
    loaded = OCR2Model.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert [r.inv_freq.dtype for r in _rotaries(loaded)] == [torch.float32] * 2


DEEPSPEED_BF16 = textwrap.dedent("""
    import deepspeed, torch
    from ocr2 import OCR2Config, OCR2Model
    from ocr2.modeling.transformer import RotaryEmbedding
    from train.dist import skip_shm_comm_build
    skip_shm_comm_build()  # as training does under gloo: no C++ build of an op this engine never calls
    deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)
    model = OCR2Model(OCR2Config.from_preset("tiny"))
    config = {"train_micro_batch_size_per_gpu": 1, "bf16": {"enabled": True}, "zero_optimization": {"stage": 0}}
    opt = torch.optim.AdamW(model.parameters())
    engine, *_ = deepspeed.initialize(model=model, optimizer=opt, config=config)
    assert next(engine.module.parameters()).dtype == torch.bfloat16  # the engine did cast the model
    print(sorted({str(m.inv_freq.dtype) for m in engine.module.modules() if isinstance(m, RotaryEmbedding)}))
""")


def test_deepspeed_bf16_engine_keeps_fp32_frequencies():
    e = env()
    e.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_port()))
    proc = subprocess.run([sys.executable, "-c", DEEPSPEED_BF16], cwd=ROOT, env=e, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "['torch.float32']"


def _port() -> int:
    from tests.train_harness import free_port

    return free_port()

"""Fine-tuning in real training processes: a pretrained checkpoint's config, weights and tokenizer in; full or LoRA
training with validation; adapters in PEFT format that resume exactly and load merged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from data_helpers import write_pages
from ocr2 import OCR2Config, OCR2Model
from ocr2.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from ocr2.processing.text import OFFICIAL_SPECIAL_IDS
from ocr2.weights import resolve_model_dir
from test_official_tokenizer import _write as write_official_tokenizer
from train_harness import BASE, initial_checkpoint, losses, metrics, run_train

# The harness's BASE picks model=micro; fine-tuning takes the checkpoint's config instead.
FINETUNE = ["model=checkpoint", "max_steps=4", "checkpoint.every=2", "checkpoint.keep_last=5", "log_every=1",
            "trainer.micro_batch_size=2", "validation.every=0"]
LORA = ["experiment=finetune_lora", *FINETUNE, "lora.r=4", "stage.lr=1e-2"]


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pages")
    write_pages(root, 16)
    write_pages(root, 4, split="validation")
    return root


@pytest.fixture(scope="module")
def base_run(pages, tmp_path_factory) -> Path:
    """A pretrained stand-in: a micro model with 2 decoder layers, saved as a training run (max_steps=0): what
    `run_train(pages, run, ["max_steps=0"])` leaves, written in this process."""
    run = tmp_path_factory.mktemp("base") / "run"
    return initial_checkpoint(run, [*BASE, f"data.path={pages}"])


@pytest.fixture(scope="module")
def lora_run(pages, base_run, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("lora") / "run"
    run_train(pages, run, [*LORA, f"init_from={base_run}", "validation.every=2", "validation.batches=1",
                           "validation.generate_pages=2", "validation.max_new_tokens=6",
                           "checkpoint.best_metric=val_loss"])
    return run


def test_lora_checkpoints_hold_peft_adapters_not_the_model(lora_run):
    model_dir = lora_run / "checkpoints" / "step_000004" / "model"
    assert (model_dir / ADAPTER_CONFIG).exists() and (model_dir / ADAPTER_WEIGHTS).exists()
    assert not list(model_dir.glob("model*.safetensors"))


def test_lora_run_takes_the_checkpoints_config(lora_run, base_run):
    base = json.loads((resolve_model_dir(base_run) / "config.json").read_text())
    tuned = json.loads((lora_run / "checkpoints" / "step_000004" / "model" / "config.json").read_text())
    assert tuned["decoder"]["num_layers"] == base["decoder"]["num_layers"] == 2


def test_lora_run_loads_merged_and_moved_from_the_base(lora_run, base_run):
    tuned, base = OCR2Model.from_pretrained(resolve_model_dir(lora_run)), OCR2Model.from_pretrained(resolve_model_dir(base_run))
    key = "decoder.layers.1.self_attn.q_proj.weight"
    assert not torch.equal(tuned.state_dict()[key], base.state_dict()[key])
    frozen = "vision_tokenizer.patch_embed.proj.weight"
    assert torch.equal(tuned.state_dict()[frozen], base.state_dict()[frozen])


def test_validation_is_logged_and_the_best_checkpoint_kept(lora_run):
    records = {m["step"]: m for m in metrics(lora_run)}
    assert {"val_loss", "val_ned"} <= set(records[2]) and {"val_loss", "val_ned"} <= set(records[4])
    assert "val_loss" not in records[1]
    best = json.loads((lora_run / "summary.json").read_text())["best"]
    assert best["metric"] == "val_loss"
    assert best["value"] == min(records[s]["val_loss"] for s in (2, 4))
    assert (lora_run / "checkpoints" / "best").read_text().strip() == best["tag"]


def test_lora_resume_is_exact(pages, base_run, lora_run, tmp_path):
    resumed = tmp_path / "resumed"
    run_train(pages, resumed, [*LORA, f"init_from={base_run}", "validation.every=2", "validation.batches=1",
                               "validation.generate_pages=2", "validation.max_new_tokens=6",
                               "checkpoint.best_metric=val_loss",
                               f"checkpoint.resume={lora_run / 'checkpoints' / 'step_000002'}"])
    full, again = losses(lora_run), losses(resumed)
    assert [again[s] for s in (3, 4)] == [full[s] for s in (3, 4)]
    a = (lora_run / "checkpoints" / "step_000004" / "model" / ADAPTER_WEIGHTS).read_bytes()
    b = (resumed / "checkpoints" / "step_000004" / "model" / ADAPTER_WEIGHTS).read_bytes()
    assert a == b


def _adapters(run: Path, tag: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoints" / tag / "model" / ADAPTER_WEIGHTS))


@pytest.fixture(scope="module")
def lora_zero0_run(pages, base_run, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("lora_zero0") / "run"
    run_train(pages, run, [*LORA, f"init_from={base_run}", "max_steps=2"])
    return run


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["zero2", "zero3"])
def test_lora_under_zero_with_activation_checkpointing_trains_like_zero0(pages, base_run, lora_zero0_run, tmp_path,
                                                                         trainer):
    run = tmp_path / "run"
    run_train(pages, run, [*LORA, f"init_from={base_run}", f"trainer={trainer}",
                           "trainer.activation_checkpointing=true", "max_steps=2"])
    got, expected = _adapters(run, "step_000002"), _adapters(lora_zero0_run, "step_000002")
    assert sorted(got) == sorted(expected)
    assert any("experts" in k for k in got)  # the routed experts' adapters are gathered and saved under ZeRO too
    for key in expected:  # same updates (expert adapters included): partitioning changes summation order only
        torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-4, msg=key)


# ------------------------------------------------------------------------------------ the official tokenizer
@pytest.fixture(scope="module")
def official_ids_checkpoint(tmp_path_factory) -> Path:
    """A micro-sized model with the release's vocabulary (129,280) and special ids, and the stand-in official
    tokenizer files (tests/test_official_tokenizer.py) beside its weights."""
    folder = tmp_path_factory.mktemp("official_ids")
    base = OCR2Config.from_preset("tiny")
    cfg = dataclasses.replace(
        base, global_view_size=256, crop_size=192,
        encoder=dataclasses.replace(base.encoder, query_view_sizes=(192, 256)),
        decoder=dataclasses.replace(base.decoder, vocab_size=129_280, num_layers=2),
        image_token_id=OFFICIAL_SPECIAL_IDS["<image>"], bos_token_id=0, eos_token_id=1, pad_token_id=2)
    torch.manual_seed(0)
    OCR2Model(cfg).save_pretrained(folder)
    write_official_tokenizer(folder)
    return folder


def test_full_finetune_trains_with_the_checkpoints_tokenizer(pages, official_ids_checkpoint, tmp_path):
    run = tmp_path / "run"
    run_train(pages, run, ["experiment=finetune", *FINETUNE, f"init_from={official_ids_checkpoint}", "max_steps=1"])
    model_dir = run / "checkpoints" / "step_000001" / "model"
    assert (model_dir / "tokenizer.json").exists() and not (model_dir / "ocr2_tokenizer.json").exists()
    assert json.loads((model_dir / "config.json").read_text())["image_token_id"] == 128815


def test_a_tokenizer_that_does_not_fit_the_model_stops_before_training(pages, official_ids_checkpoint, tmp_path):
    proc = run_train(pages, tmp_path / "run", ["max_steps=1", f"init_from={official_ids_checkpoint}"], check=False)
    assert proc.returncode != 0
    assert "do not match" in proc.stderr and "model=checkpoint" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints" / "latest").exists()


@pytest.mark.slow
def test_full_finetune_under_zero3_with_activation_checkpointing_trains_like_zero0(pages, base_run, tmp_path):
    from safetensors.torch import load_file

    full = ["experiment=finetune", *FINETUNE, f"init_from={base_run}", "max_steps=2", "stage.lr=1e-3"]
    run_train(pages, tmp_path / "zero0", full)
    run_train(pages, tmp_path / "zero3", [*full, "trainer=zero3", "trainer.activation_checkpointing=true"])
    weights = [load_file(str(tmp_path / r / "checkpoints" / "step_000002" / "model" / "model.safetensors"))
               for r in ("zero0", "zero3")]
    assert sorted(weights[0]) == sorted(weights[1])
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], atol=1e-5, rtol=1e-4, msg=key)

"""`ocr2-export RUN --out DIR --layout ocr2|official|hf` (train/export.py main()) on training-checkpoint layouts:
`<run>/checkpoints/latest` -> `step_N/model/{config.json, reading.json, model.safetensors, ocr2_tokenizer.json}`.

The fast tests build that layout by hand, as the trainer writes it (save_state_dict + tokenizer); the slow ones
export a real one-step tiny run, through both routes (consolidated weights and the ZeRO-2 merge). The exports run
in this process (main(), what the console script calls); `python -m train.export` itself runs in
tests/test_readme_finetune.py."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
import torch

from data_helpers import write_pages
from export_helpers import batch_with_crops, random_tiny
from ocr2 import OCR2Config, OCR2Model
from ocr2.processing.reading import ReadingRecipe
from ocr2.processing.text import TOKENIZER_FILE, ByteTokenizer
from ocr2.weights import save_state_dict
from train import export
from train_harness import ROOT, env, initial_checkpoint, train_cmd

TOL = 1e-5
LAYOUTS = ["ocr2", "official", "hf"]
RECIPE = ReadingRecipe(max_new_tokens=77)


def _checkpoint(run, model: OCR2Model):
    model_dir = run / "checkpoints" / "step_000001" / "model"
    save_state_dict(model.config, model.state_dict(), model_dir, reading=RECIPE)
    ByteTokenizer().save(model_dir)
    (run / "checkpoints" / "latest").write_text("step_000001\n")
    return run


def _logits(folder, layout: str, model: OCR2Model) -> torch.Tensor:
    """Logits of the exported folder, read the way its layout is meant to be read."""
    ids, views, crops, num = batch_with_crops(model.config)
    with torch.no_grad():
        if layout == "hf":
            from transformers.models.deepseek_ocr2 import DeepseekOcr2ForConditionalGeneration

            port = DeepseekOcr2ForConditionalGeneration.from_pretrained(str(folder), attn_implementation="eager")
            return port.eval()(input_ids=ids, pixel_values=views, pixel_values_local=crops,
                               num_local_patches=num).logits
        return OCR2Model.from_pretrained(folder, attn_implementation="eager")(ids, views, crops, num).logits


def _close(layout: str, a: torch.Tensor, b: torch.Tensor) -> bool:
    # ocr2 reads its own and the official layout to the very same tensors; the port computes in its own order.
    return (a - b).abs().max().item() <= TOL if layout == "hf" else torch.equal(a, b)


@pytest.fixture(scope="module")
def model():
    return random_tiny()


@pytest.fixture(scope="module")
def run(model, tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("run"), model)


@pytest.fixture(scope="module")
def reference(model):
    ids, views, crops, num = batch_with_crops(model.config)
    with torch.no_grad():
        return model(ids, views, crops, num).logits


def test_help_shows_the_layouts(capsys):
    with pytest.raises(SystemExit) as stop:
        export.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "--layout {ocr2,official,hf}" in text
    assert "the release's" in text and "transformers port's" in text


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_reads_back_to_the_checkpoints_logits(run, model, reference, tmp_path, layout):
    assert export.main([str(run), "--out", str(tmp_path / "out"), "--layout", layout]) == 0
    assert _close(layout, _logits(tmp_path / "out", layout, model), reference)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_carries_the_reading_recipe_and_the_tokenizer(run, tmp_path, layout):
    assert export.main([str(run), "--out", str(tmp_path / "out"), "--layout", layout]) == 0
    assert ReadingRecipe.load(tmp_path / "out") == RECIPE
    assert (tmp_path / "out" / TOKENIZER_FILE).exists()


def test_default_layout_is_ocr2_with_model_type(run, tmp_path):
    assert export.main([str(run), "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "ocr2"


def test_official_in_bfloat16_from_the_cli(run, model, tmp_path):
    assert export.main([str(run), "--out", str(tmp_path), "--layout", "official", "--dtype", "bfloat16"]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
    back = OCR2Model.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert torch.equal(back.decoder.layers[1].mlp.experts.up_proj,
                       model.decoder.layers[1].mlp.experts.up_proj.to(torch.bfloat16))


def test_max_shard_size_splits_the_official_weights(run, model, reference, tmp_path):
    assert export.main([str(run), "--out", str(tmp_path), "--layout", "official", "--max-shard-size", "1MB"]) == 0
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    assert torch.equal(_logits(tmp_path, "official", model), reference)


def test_notes_say_what_other_tools_will_not_read(run, tmp_path, capsys):
    assert export.main([str(run), "--out", str(tmp_path), "--layout", "official"]) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "vision sizes differ" in err


def test_a_model_the_port_cannot_hold_exits_2_naming_the_reason(tmp_path, capsys):
    tiny = OCR2Config.from_preset("tiny")
    raster = dataclasses.replace(tiny, encoder=dataclasses.replace(tiny.encoder, mask="raster"))
    run = _checkpoint(tmp_path / "run", OCR2Model(raster))
    assert export.main([str(run), "--out", str(tmp_path / "out"), "--layout", "hf"]) == 2
    assert "encoder.mask='raster'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- real run
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One ZeRO-2 step of the tiny model (official geometry, so every layout can hold it); the checkpoint has both
    DeepSpeed's partitions and the consolidated model/ folder."""
    root = tmp_path_factory.mktemp("trained")
    pages = write_pages(root / "pages", 4)
    args = ["model=tiny", "model.attn_implementation=eager", "trainer=zero2", "trainer.micro_batch_size=1",
            "data.num_workers=0", "logger=none", "log_every=1", "seed=0", f"data.path={pages}",
            f"run_dir={root / 'run'}", "max_steps=1", "checkpoint.every=1"]
    proc = subprocess.run(train_cmd(args), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root / "run"


@pytest.fixture(scope="module")
def trained_reference(trained):
    """The trained checkpoint's own model/ folder, read back, and its logits: what every export must reproduce."""
    live = OCR2Model.from_pretrained(trained / "checkpoints" / "step_000001" / "model", attn_implementation="eager")
    ids, views, crops, num = batch_with_crops(live.config)
    with torch.no_grad():
        return live, live(ids, views, crops, num).logits


@pytest.mark.slow
@pytest.mark.parametrize("route", [[], ["--from-zero"]], ids=["consolidated", "zero_merge"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_trained_checkpoint_exports_to_each_layout(trained, trained_reference, tmp_path, layout, route):
    out = tmp_path / "out"
    assert export.main([str(trained), "--out", str(out), "--layout", layout, *route]) == 0
    live, reference = trained_reference
    assert _close(layout, _logits(out, layout, live), reference)


def _train(args: list[str]) -> None:
    proc = subprocess.run(train_cmd(args), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def lora_trained(tmp_path_factory):
    """A tiny base run (no steps: its initial checkpoint, written in this process) and two LoRA steps from it: the
    LoRA checkpoint's model/ holds only adapters."""
    root = tmp_path_factory.mktemp("lora")
    pages = write_pages(root / "pages", 4)
    common = ["trainer=cpu", "trainer.micro_batch_size=1", "data.num_workers=0", "logger=none", "seed=0",
              f"data.path={pages}"]
    initial_checkpoint(root / "base", ["model=tiny", "model.attn_implementation=eager", *common])  # = max_steps=0
    _train(["experiment=finetune_lora", "model=checkpoint", f"init_from={root / 'base'}", *common,
            f"run_dir={root / 'run'}", "max_steps=2", "checkpoint.every=2", "validation.every=0", "lora.r=4",
            "stage.lr=1e-2"])
    return root


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_lora_run_exports_merged_to_each_layout(lora_trained, tmp_path, layout):
    """The issue's check: LoRA fine-tuned a few steps, exported, read by the layout's reader: the merged model's
    logits (the port's within 1e-5 in fp32)."""
    assert export.main([str(lora_trained / "run"), "--out", str(tmp_path), "--layout", layout]) == 0
    merged = OCR2Model.from_pretrained(lora_trained / "run" / "checkpoints" / "step_000002" / "model",
                                       attn_implementation="eager")
    base = OCR2Model.from_pretrained(lora_trained / "base" / "checkpoints" / "step_000000" / "model")
    key = "decoder.layers.1.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[key], base.state_dict()[key])  # the adapters moved the weights
    ids, views, crops, num = batch_with_crops(merged.config)
    with torch.no_grad():
        reference = merged(ids, views, crops, num).logits
    assert _close(layout, _logits(tmp_path, layout, merged), reference)

"""A checkpoint knows how it reads: reading.json (views, prompt, decoding) is written with every model directory
and read by default by OCRPipeline, ocr2-infer, ocr2-eval and ocr2-report; explicit options still override."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data_helpers import page_row, write_pages, write_split
from ocr2 import OCR2Config, OCR2Model
from ocr2.pipeline import OCRPipeline, save_with_tokenizer
from ocr2.processing.reading import (
    PROMPT_PLAIN_MARKDOWN, READING_FILE, RELEASE_READING, ReadingRecipe, resolve_prompt,
)
from ocr2.processing.text import ByteTokenizer
from train_harness import ROOT, env, run_train

TINY_READING = ReadingRecipe(views="single", prompt="plain_markdown", max_new_tokens=7, ngram_size=0)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("model")
    save_with_tokenizer(OCR2Model(OCR2Config.from_preset("tiny")), ByteTokenizer(), d, reading=TINY_READING)
    return d


def test_prompt_names_resolve_and_bad_prompts_are_refused():
    assert resolve_prompt("plain_markdown") == PROMPT_PLAIN_MARKDOWN == "<image>\nConvert the document to markdown."
    with pytest.raises(ValueError, match="neither a name"):
        resolve_prompt("Convert the document")


def test_save_pretrained_records_the_reading_recipe(model_dir):
    saved = json.loads((model_dir / READING_FILE).read_text())
    assert saved == {"views": "single", "prompt": PROMPT_PLAIN_MARKDOWN, "max_new_tokens": 7, "ngram_size": 0,
                     "ngram_window": 90}
    model = OCR2Model.from_pretrained(model_dir)
    assert model.reading == TINY_READING


def test_a_fresh_model_saves_the_release_recipe(tmp_path):
    OCR2Model(OCR2Config.from_preset("tiny")).save_pretrained(tmp_path)
    assert ReadingRecipe.load(tmp_path) == RELEASE_READING


def test_a_directory_without_a_recipe_reads_the_release_way(model_dir, tmp_path):
    for f in model_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / READING_FILE).unlink()
    pipe = OCRPipeline.from_pretrained(tmp_path, device="cpu")
    assert pipe.recipe.name == "multi_crop" and pipe.prompt == RELEASE_READING.prompt
    assert pipe.no_repeat is not None and (pipe.no_repeat.n, pipe.no_repeat.window) == (20, 90)


def test_the_pipeline_reads_the_way_the_checkpoint_says(model_dir):
    pipe = OCRPipeline.from_pretrained(model_dir, device="cpu")
    assert pipe.recipe.name == "single:1024" and pipe.prompt == PROMPT_PLAIN_MARKDOWN
    assert pipe.max_new_tokens == 7 and pipe.no_repeat is None


def test_explicit_options_override_one_by_one(model_dir):
    pipe = OCRPipeline.from_pretrained(model_dir, device="cpu", views="multi_crop", max_new_tokens=3)
    assert pipe.recipe.name == "multi_crop" and pipe.max_new_tokens == 3
    assert pipe.prompt == PROMPT_PLAIN_MARKDOWN  # not overridden: still the checkpoint's


def test_a_broken_recipe_names_the_file(tmp_path):
    (tmp_path / READING_FILE).write_text('{"views": "huge"}')
    with pytest.raises(ValueError, match=f"{READING_FILE}: not a reading recipe.*unknown view recipe"):
        ReadingRecipe.load(tmp_path)


# ------------------------------------------------------------------------------------ a freshly trained run
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("reading_run")
    data = write_pages(tmp / "pages", 8)
    write_split(data, "validation", [page_row(i, prefix="v") for i in range(3)])
    run = tmp / "run"
    run_train(data, run, ["stage.views=[single:256]", "max_steps=2", "checkpoint.every=2", "data.max_length=600"])
    return run, data


def _ocr2_eval(run: Path, data: Path, out: Path, *overrides: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "eval.evaluate", f"checkpoint={run}", f"data.path={data}",
                           f"out_dir={out}", "device=cpu", *overrides],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_training_records_how_the_run_reads(run):
    reading = ReadingRecipe.load(next(run[0].rglob(READING_FILE)).parent)
    assert reading == ReadingRecipe(views="single:256", prompt=PROMPT_PLAIN_MARKDOWN, max_new_tokens=600)


@pytest.mark.slow
def test_ocr2_eval_without_overrides_equals_the_explicit_reading(run, tmp_path):
    run_dir, data = run
    default = _ocr2_eval(run_dir, data, tmp_path / "default", "max_new_tokens=8")
    explicit = _ocr2_eval(run_dir, data, tmp_path / "explicit", "max_new_tokens=8", "views=single:256",
                          "prompt=plain_markdown", "ngram_size=20", "ngram_window=90")
    assert default["protocol"]["views"] == "single:256" and default["protocol"]["prompt"] == PROMPT_PLAIN_MARKDOWN
    assert default["summary"] == explicit["summary"]
    assert default["pages"] == explicit["pages"]


@pytest.mark.slow
def test_ocr2_infer_takes_a_run_directory(run, tmp_path):
    run_dir, data = run
    page = tmp_path / "page.png"
    from data_helpers import page_image

    page_image(0, (256, 256)).save(page)
    proc = subprocess.run([sys.executable, "-m", "eval.infer", str(page), "--model", str(run_dir), "--out",
                           str(tmp_path / "out"), "--max-new-tokens", "3", "--quiet"],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "views=single:256" in proc.stderr
    record = json.loads((tmp_path / "out" / "page.json").read_text())
    assert record["image_tokens"] == 16 + 1  # one 256² view of the micro model: 16 queries + separator


@pytest.mark.slow
def test_max_steps_0_saves_the_initial_model(run, tmp_path):
    _, data = run
    run_train(data, tmp_path / "init", ["stage.views=[single:256]", "max_steps=0"])
    assert (tmp_path / "init" / "checkpoints" / "step_000000" / "model" / READING_FILE).exists()


@pytest.mark.parametrize("change,message", [({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
                                            ({"ngram_size": 1}, "ngram_size must be 0 \\(off\\) or >= 2"),
                                            ({"ngram_window": 0}, "ngram_window must be >= 1")])
def test_a_recipe_checks_its_own_values(change, message):
    with pytest.raises(ValueError, match=message):
        RELEASE_READING.replace(**change)

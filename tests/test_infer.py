"""Reading documents: the Python API returns per-page results; bad files fail alone; the CLI's exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from ocr2 import OCR2Config, OCR2Model
from ocr2.pipeline import OCRPipeline, save_with_tokenizer
from ocr2.processing.text import ByteTokenizer

ROOT = Path(__file__).resolve().parents[1]


def _page(w=420, h=300, text="Hello"):
    img = Image.new("RGB", (w, h), "white")
    ImageDraw.Draw(img).text((20, 20), text, fill="black")
    return img


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ckpt")
    save_with_tokenizer(OCR2Model(OCR2Config.from_preset("tiny")), ByteTokenizer(), d)
    return d


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs")
    _page().save(d / "a.png")
    _page(900, 700).save(d / "b.jpg")  # > 768 on a side: gets crops
    _page(text="p1").save(d / "doc.pdf", save_all=True, append_images=[_page(text="p2")])
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (d / "empty.pdf").write_bytes(b"")
    return d


def test_api_returns_one_result_per_page_and_errors_per_bad_file(checkpoint, inputs):
    pipe = OCRPipeline.from_pretrained(checkpoint, device="cpu", max_new_tokens=3, batch_size=2)
    results = pipe([inputs], progress=False)
    by_name = {r.name: r for r in results}
    assert set(by_name) == {"a", "b", "corrupt", "doc_p0001", "doc_p0002", "empty"}
    assert "corrupt.png" in by_name["corrupt"].error and "empty.pdf" in by_name["empty"].error
    good = [r for r in results if not r.error]
    assert all(r.generated_tokens >= 1 and r.prompt_tokens > r.image_tokens for r in good)
    assert by_name["b"].image_tokens > by_name["a"].image_tokens  # crops add 144 placeholders each


def test_decompression_bomb_is_a_per_file_error(checkpoint, inputs):
    pipe = OCRPipeline.from_pretrained(checkpoint, device="cpu", max_new_tokens=2, max_pixels=1000)
    (result,) = pipe([inputs / "a.png"], progress=False)
    assert result.error and "a.png" in result.error


def test_cli_writes_markdown_and_json_and_exits_1_when_some_fail(checkpoint, inputs, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "eval.infer", str(inputs / "a.png"), str(inputs / "corrupt.png"),
                           "--model", str(checkpoint), "--out", str(out), "--max-new-tokens", "3", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "corrupt.png" in proc.stderr
    assert (out / "a.md").exists()
    record = json.loads((out / "a.json").read_text())
    assert record["generated_tokens"] == 3 and record["hit_token_limit"] is True


def test_single_view_reading_shows_the_model_its_single_view_training_view(checkpoint, monkeypatch):
    # A model trained on single views must be read with the same view, not the release's squashed
    # crop_mode=False view (the demo's greedy NED was 0.13 instead of ~0 from that mismatch).
    from ocr2.data.examples import ExampleEncoder

    pipe = OCRPipeline.from_pretrained(checkpoint, device="cpu", max_new_tokens=1, views="single")
    seen = {}
    real_generate = pipe.model.generate

    def spy(input_ids, global_views, crops, *args, **kwargs):
        seen["global"], seen["crops"] = global_views.clone(), crops
        return real_generate(input_ids, global_views, crops, *args, **kwargs)

    monkeypatch.setattr(pipe.model, "generate", spy)
    page = _page(420, 300)
    pipe.read_images([("a", page)], progress=False)
    encoder = ExampleEncoder(pipe.tokenizer, pipe.model.config, "single", prompt="plain_markdown")
    trained_on = encoder({"id": "a", "image": page, "markdown": "x"}).global_view
    assert seen["crops"] is None
    assert torch.equal(seen["global"][0], trained_on)

"""ocr2-infer keeps every good page: outputs written per page as it is done, per-page failures isolated, a clean
stop on SIGTERM, reruns that skip finished pages, and distinct outputs for distinct inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from ocr2 import OCR2Config, OCR2Model
from ocr2.documents import page_names
from ocr2.pipeline import OCRPipeline, save_with_tokenizer
from ocr2.processing.reading import ReadingRecipe
from ocr2.processing.text import ByteTokenizer
from ocr2.query_tables import with_query_tables

ROOT = Path(__file__).resolve().parents[1]


def _page(text="Hello", size=(300, 200), color="white"):
    img = Image.new("RGB", size, color)
    ImageDraw.Draw(img).text((20, 20), text, fill="black" if color == "white" else "white")
    return img


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ckpt")
    reading = ReadingRecipe(views="single:256", prompt="plain_markdown", max_new_tokens=4, ngram_size=0)
    config = with_query_tables(OCR2Config.from_preset("tiny"), ["single:256"])  # small views: quick on CPU
    save_with_tokenizer(OCR2Model(config), ByteTokenizer(), d, reading=reading)
    return d


def _infer(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "eval.infer", *map(str, args), "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_a_page_that_breaks_the_model_fails_alone(checkpoint, monkeypatch):
    pipe = OCRPipeline.from_pretrained(checkpoint, device="cpu", batch_size=4)
    real = pipe.model.generate

    def generate(ids, global_views, *args, **kwargs):  # an all-black page breaks "the model"
        if bool((global_views == -1).flatten(1).all(1).any()):
            raise RuntimeError("boom")
        return real(ids, global_views, *args, **kwargs)

    monkeypatch.setattr(pipe.model, "generate", generate)
    pages = [("a", _page()), ("black", Image.new("RGB", (256, 256), "black")), ("b", _page()), ("c", _page())]
    results = {r.name: r for r in pipe.read_images(pages, progress=False)}
    assert "boom" in results["black"].error
    assert all(results[n].error is None and results[n].generated_tokens >= 1 for n in "abc")


def test_distinct_inputs_get_distinct_outputs(checkpoint, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _page().save(tmp_path / "a" / "same.png"), _page().save(tmp_path / "a" / "same.jpg")
    _page().save(tmp_path / "b" / "same.png"), _page().save(tmp_path / "doc_p0001.png")
    _page("p1").save(tmp_path / "doc.pdf", save_all=True, append_images=[_page("p2")])
    inputs = [tmp_path / "a" / "same.png", tmp_path / "a" / "same.jpg", tmp_path / "b" / "same.png",
              tmp_path / "doc.pdf", tmp_path / "doc_p0001.png"]
    assert sorted(n for ns in page_names(inputs).values() for n in ns) == sorted(
        ["a__same_png", "a__same_jpg", "b__same_png", "doc_p0001", "doc_p0002", "doc_p0001_png"])
    proc = _infer(*inputs, "--model", checkpoint, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "out").glob("*.md"))) == 6


def test_a_non_utf8_file_name_is_read_and_written(checkpoint, tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    _page().save(tmp_path / name)
    proc = subprocess.run([sys.executable, "-m", "eval.infer", os.fsencode(tmp_path / name), "--model",
                           str(checkpoint), "--out", str(tmp_path / "out"), "--quiet"],
                          cwd=ROOT, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (written,) = (tmp_path / "out").glob("*.json")
    assert json.loads(written.read_text())["generated_tokens"] >= 1


def test_a_malformed_grounding_span_from_the_model_keeps_the_page(checkpoint, monkeypatch):
    pipe = OCRPipeline.from_pretrained(checkpoint, device="cpu")
    monkeypatch.setattr(pipe.tokenizer, "decode", lambda ids, **kw: "<|ref|>x<|/ref|><|det|>5<|/det|>text")
    (result,) = pipe.read_images([("a", _page())], progress=False)
    assert result.error is None and result.markdown == "text" and result.blocks[0].boxes == []


@pytest.mark.slow
def test_sigterm_keeps_finished_pages_and_a_rerun_reads_only_the_rest(checkpoint, tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(30):
        _page(f"page {i}").save(pages / f"p{i:02d}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "eval.infer", str(pages), "--model", str(checkpoint), "--out", str(out),
           "--batch-size", "1", "--max-new-tokens", "40", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.md"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    done = sorted(p.stem for p in out.glob("*.md"))
    assert 2 <= len(done) < 30, done
    for stem in done:  # every page written is whole
        assert json.loads((out / f"{stem}.json").read_text())["name"] == stem
    assert not list(out.glob(".*.tmp"))
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{30 - len(done)} page(s) read, 0 failed, {len(done)} already done" in rerun.stdout
    assert len(list(out.glob("*.md"))) == 30


def test_a_pdf_page_over_the_pixel_limit_is_refused_before_rendering(tmp_path):
    from ocr2.documents import iter_pages

    # 100 px at 1 dpi: a 7,200-point page, 14,400 px a side at 144 dpi (207 MPx), in a file of a few hundred bytes.
    Image.new("RGB", (100, 100), "white").save(tmp_path / "huge.pdf", resolution=1)
    assert (tmp_path / "huge.pdf").stat().st_size < 4000
    ((page, error),) = list(iter_pages(tmp_path / "huge.pdf"))
    assert page == 0 and isinstance(error, ValueError) and "pixels at 144 dpi > limit" in str(error)


def test_evaluation_refuses_duplicate_sample_ids(checkpoint):
    from eval.harness import evaluate
    from eval.pages import EvalPage

    pipe = OCRPipeline.from_pretrained(checkpoint, device="cpu")
    pages = [EvalPage("same", _page(), "x", {}), EvalPage("same", _page(), "y", {})]
    with pytest.raises(ValueError, match="1 sample id\\(s\\) occur more than once.*same"):
        evaluate(pipe, pages, progress=False)


def test_every_frame_of_a_multipage_tiff_is_a_page(checkpoint, tmp_path):
    frames = [_page(f"frame {i}") for i in range(3)]
    frames[0].save(tmp_path / "scan.tiff", save_all=True, append_images=frames[1:])
    pipe = OCRPipeline.from_pretrained(checkpoint, device="cpu")
    results = pipe([tmp_path / "scan.tiff"], progress=False)
    assert [(r.name, r.page, r.error) for r in results] == [
        ("scan_p0001", 0, None), ("scan_p0002", 1, None), ("scan_p0003", 2, None)]


@pytest.mark.parametrize("args,message", [(["--batch-size", "0"], "--batch-size must be >= 1"),
                                          (["--ngram-size", "1"], "--ngram-size must be 0 (off) or >= 2"),
                                          (["--views", "huge"], "unknown view recipe 'huge'")])
def test_bad_cli_values_fail_before_the_model_loads(tmp_path, args, message):
    proc = _infer(tmp_path / "page.png", "--model", tmp_path / "no-such-model", *args)
    assert proc.returncode == 2 and message in proc.stderr and "cannot load" not in proc.stderr


def test_a_write_failure_stops_with_the_reason_and_keeps_what_was_written(checkpoint, tmp_path, monkeypatch):
    import errno

    from eval import infer

    for i in range(3):
        _page(f"p{i}").save(tmp_path / f"p{i}.png")
    real, calls = infer._write_atomic, []

    def write(path, text):  # the disk fills up at the third file (the second page's json)
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, text)

    monkeypatch.setattr(infer, "_write_atomic", write)
    code = infer.main([str(tmp_path / f"p{i}.png") for i in range(3)] + [
        "--model", str(checkpoint), "--out", str(tmp_path / "out"), "--batch-size", "1", "--quiet"])
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.json", "p0.md"]

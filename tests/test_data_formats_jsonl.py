"""`ocr2-data jsonl`: a manifest of image paths + markdown (+ prompt), and ms-swift's messages / query-response
forms, into the page dataset; bad lines skipped and counted by file and line, or refused with --strict."""

import json
import logging

import pyarrow.parquet as pq
import pytest

from data_helpers import page_image
from data_pipelines.cli import main
from data_pipelines.jsonl import build_jsonl


def _rows(out, split="train") -> dict[str, dict]:
    return {r["id"]: r for f in sorted((out / "data").glob(f"{split}-*.parquet")) for r in pq.read_table(f).to_pylist()}


def _manifest(tmp_path, records: list, images=3) -> "Path":
    (tmp_path / "scans").mkdir(exist_ok=True)
    for i in range(images):
        page_image(i).save(tmp_path / "scans" / f"p{i}.png")
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = [
    {"image": "scans/p0.png", "markdown": "# Zero"},
    {"image": "scans/p1.png", "markdown": "One", "prompt": "Free OCR.", "id": "one"},
    {"messages": [{"role": "user", "content": "<image>Describe the page."},
                  {"role": "assistant", "content": "# Two"}], "images": ["scans/p2.png"]},
    {"query": "<image>", "response": "Zero again", "images": ["scans/p0.png"]},
]


def test_plain_and_ms_swift_records_become_pages_with_their_prompts(tmp_path):
    out = tmp_path / "out"
    info = build_jsonl(out, _manifest(tmp_path, GOOD), split="train")
    rows = _rows(out)
    assert info["splits"] == {"train": 4} and info["skipped"] == {}
    assert {k: (r["markdown"], r["prompt"]) for k, r in rows.items()} == {
        "scans/p0.png": ("# Zero", None), "one": ("One", "<image>\nFree OCR."),
        "scans/p2.png": ("# Two", "<image>Describe the page."), "scans/p0.png#2": ("Zero again", None)}
    assert rows["one"]["image"]["bytes"] == (tmp_path / "scans" / "p1.png").read_bytes()
    assert (rows["one"]["width"], rows["one"]["height"], rows["one"]["source"]) == (96, 128, "jsonl:manifest.jsonl")


BAD = [
    '{"image": "scans/p0.png", "markdown": "fine"}',
    '{"image": "scans/p1.png", "markdown": ',  # line 2: not JSON
    {"image": "scans/p1.png"},  # line 3: no markdown
    {"image": "scans/nope.png", "markdown": "x"},  # line 4: missing image
    {"images": ["scans/p1.png", "scans/p2.png"], "markdown": "x"},  # line 5: two pages in one record
    {"messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "<image>"},
                  {"role": "assistant", "content": "x"}], "images": ["scans/p1.png"]},  # line 6: system turn
    {"image": "scans/p2.png", "markdown": "   "},  # line 7: empty
]


def test_bad_lines_are_skipped_counted_and_logged_with_file_and_line(tmp_path, caplog):
    manifest = _manifest(tmp_path, BAD)
    with caplog.at_level(logging.WARNING, logger="ocr2.data"):
        info = build_jsonl(tmp_path / "out", manifest, split="train")
    assert info["splits"] == {"train": 1}
    assert info["skipped"] == {"bad_record": 4, "empty_text": 1, "missing_image": 1}
    log = caplog.text
    for line, words in [(2, "not JSON"), (3, "no 'markdown' key"), (4, "nope.png: no such image file"),
                        (5, "one page per record"), (6, "no system turn"), (7, "markdown is empty")]:
        assert f"{manifest} line {line}" in log and words in log, (line, words)


def test_strict_stops_at_the_first_bad_line_and_keeps_the_existing_dataset(tmp_path, capsys):
    out = tmp_path / "out"
    build_jsonl(out, _manifest(tmp_path, GOOD), split="train")
    before = _rows(out)
    manifest = _manifest(tmp_path, BAD)
    with pytest.raises(ValueError, match=rf"{manifest} line 2: not JSON"):
        build_jsonl(out, manifest, strict=True)
    assert _rows(out) == before
    assert main(["jsonl", str(manifest), str(out), "--strict"]) == 2
    assert "manifest.jsonl line 2: not JSON" in capsys.readouterr().err


def test_a_split_built_from_its_own_manifest_keeps_the_others(tmp_path):
    out = tmp_path / "out"
    build_jsonl(out, _manifest(tmp_path, GOOD[:2]), split="train")
    build_jsonl(out, _manifest(tmp_path, GOOD[2:]), split="validation")
    assert set(_rows(out, "train")) == {"scans/p0.png", "one"} and len(_rows(out, "validation")) == 2


def test_by_hash_one_image_under_two_prompts_stays_in_one_split(tmp_path):
    records = [{"image": f"scans/p{i % 3}.png", "markdown": f"m{i}", "id": f"r{i}"} for i in range(12)]
    out = tmp_path / "out"
    build_jsonl(out, _manifest(tmp_path, records), validation_fraction=0.5)
    splits = {r["id"]: s for s in ("train", "validation") for r in _rows(out, s).values()}
    by_image = {}
    for i in range(12):
        by_image.setdefault(i % 3, set()).add(splits[f"r{i}"])
    assert all(len(s) == 1 for s in by_image.values()) and len(splits) == 12


def test_an_empty_result_and_a_missing_manifest_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such manifest"):
        build_jsonl(tmp_path / "out", tmp_path / "none.jsonl")
    with pytest.raises(ValueError, match=r"no pages were written; skipped: \{'missing_image': 1\}"):
        build_jsonl(tmp_path / "out", _manifest(tmp_path, [{"image": "x.png", "markdown": "y"}]))


def test_help_shows_the_record_formats(capsys):
    with pytest.raises(SystemExit):
        main(["jsonl", "--help"])
    text = capsys.readouterr().out
    assert '{"image": "scans/p1.png", "markdown":' in text and '"messages": [{"role": "user"' in text
    assert "--strict" in text


def test_a_built_manifest_trains_with_each_records_prompt(tmp_path):
    from ocr2 import OCR2Config
    from ocr2.data import DataConfig, TrainLoader
    from ocr2.processing.text import ByteTokenizer
    from ocr2.tokens import IGNORE_INDEX

    out = tmp_path / "out"
    build_jsonl(out, _manifest(tmp_path, GOOD), split="train")
    tok = ByteTokenizer()
    loader = TrainLoader(DataConfig(path=str(out), views=("single:768",), num_workers=0, epochs=1), tok,
                         OCR2Config.from_preset("tiny"))
    prompts = {}
    for batch in loader:
        ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
        prompts[loader.last_ids[0]] = tok.decode([t for t, l in zip(ids, labels) if l == IGNORE_INDEX],
                                                 skip_special_tokens=True)
    assert prompts["one"] == "\nFree OCR." and prompts["scans/p2.png"] == "Describe the page."
    assert prompts["scans/p0.png"] == prompts["scans/p0.png#2"] == "\nConvert the document to markdown."

"""`ocr2-eval` (Hydra) in a real process: checkpoint x dataset -> predictions in the OmniDocBench layout
(`predictions/<image stem>.md`), metrics.json with the protocol, summary.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from data_helpers import page_row, write_split
from ocr2 import OCR2Model
from ocr2.pipeline import save_with_tokenizer
from ocr2.processing.text import ByteTokenizer
from ocr2.query_tables import with_query_tables
from train.builders import build_model_config
from train_harness import ROOT, env


def _micro():
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return build_model_config(compose(config_name="train", overrides=["model=micro"]).model)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    return write_split(tmp_path_factory.mktemp("pages"), "validation", [page_row(i, prefix="v") for i in range(3)])


def _ocr2_eval(model: Path, data: Path, out: Path, *overrides: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "eval.evaluate", f"checkpoint={model}", f"data.path={data}",
                           f"out_dir={out}", "max_new_tokens=6", "device=cpu", *overrides],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def single_view_eval(pages, tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("eval")
    save_with_tokenizer(OCR2Model(_micro()), ByteTokenizer(), tmp / "model")
    out = tmp / "out"
    return out, _ocr2_eval(tmp / "model", pages, out, "views=single", "prompt=free_ocr")


def test_predictions_are_written_per_page_stem(single_view_eval):
    out, _ = single_view_eval
    assert sorted(p.name for p in (out / "predictions").glob("*.md")) == ["v0000.md", "v0001.md", "v0002.md"]


def test_metrics_carry_the_protocol(single_view_eval):
    _, metrics = single_view_eval
    proto = metrics["protocol"]
    assert proto["views"] == "single:256" and proto["prompt"] == "<image>\nFree OCR."
    assert proto["decoding"]["method"] == "greedy" and proto["decoding"]["max_new_tokens"] == 6
    assert "post_processing" in proto and metrics["summary"]["pages"] == 3


def test_out_dir_holds_hydra_files_too(single_view_eval):
    out, _ = single_view_eval  # and tests/conftest.py fails the session if outputs/ appeared in the checkout
    assert (out / ".hydra" / "config.yaml").exists()


def test_summary_table_is_written(single_view_eval):
    out, _ = single_view_eval
    assert (out / "summary.md").read_text().startswith("| pages | page_ned |")


def test_a_v1_view_recipe_is_read_and_recorded(pages, tmp_path):
    save_with_tokenizer(OCR2Model(with_query_tables(_micro(), ["tiny"])), ByteTokenizer(), tmp_path / "model")
    metrics = _ocr2_eval(tmp_path / "model", pages, tmp_path / "out", "views=tiny")
    assert metrics["protocol"]["views"] == "tiny"


@pytest.mark.parametrize("override,message", [("batch_size=0", "batch_size must be >= 1"),
                                              ("views=huge", "unknown view recipe 'huge'")])
def test_bad_values_fail_before_a_model_loads(pages, tmp_path, override, message):
    from omegaconf import OmegaConf

    from eval.evaluate import check_config

    cfg = OmegaConf.load(ROOT / "configs" / "eval.yaml")
    cfg.merge_with_dotlist([f"checkpoint={tmp_path / 'none'}", f"data.path={pages}", override])
    with pytest.raises(ValueError, match=message):
        check_config(cfg)


def test_the_official_layout_is_evaluated_and_a_rerun_resumes(tmp_path):
    from omnidocbench_layout import write_official_layout

    write_official_layout(tmp_path / "OmniDocBench", 3)
    save_with_tokenizer(OCR2Model(_micro()), ByteTokenizer(), tmp_path / "model")
    out, args = tmp_path / "out", ("views=single", "prompt=free_ocr", "batch_size=2")
    first = _ocr2_eval(tmp_path / "model", tmp_path / "OmniDocBench", out, *args)
    proto = first["protocol"]
    assert proto["dataset_layout"] == "omnidocbench" and proto["split"] is None
    assert proto["dataset"].endswith("OmniDocBench.json") and proto["batching"]["batch_size"] == 2
    assert first["run"]["pages_read"] == 3 and sorted(first["by_page_type"]) == ["book", "exam_paper",
                                                                                 "research_report"]
    assert all("repetition_rate" in row for row in first["by_page_type"].values())
    summary = (out / "summary.md").read_text()
    assert "Per page type" in summary and "Per page attribute" in summary and "Overall" in summary
    again = _ocr2_eval(tmp_path / "model", tmp_path / "OmniDocBench", out, *args)
    assert again["run"]["pages_read"] == 0 and again["run"]["pages_resumed"] == 3
    assert again["summary"] == first["summary"]


def test_the_split_defaults_to_the_one_the_builder_wrote(single_view_eval):
    _, metrics = single_view_eval  # the fixture's dataset has only a validation split and no split was given
    assert metrics["protocol"]["split"] == "validation" and metrics["protocol"]["dataset_layout"] == "ocr2"

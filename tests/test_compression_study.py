"""The Fox-shaped compression study runs end to end: one budget per trained view size, table + plot."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from hydra import compose, initialize_config_dir

from data_pipelines.cli import main as data_main
from ocr2 import OCR2Model
from ocr2.pipeline import save_with_tokenizer
from ocr2.processing.text import ByteTokenizer
from train.builders import build_model_config
from train_harness import ROOT, env


def test_study_scores_every_view_size_budget_and_writes_table_and_plot(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=memory_tiers"])
    torch.manual_seed(0)
    save_with_tokenizer(OCR2Model(build_model_config(cfg.model)), ByteTokenizer(), tmp_path / "model")
    assert data_main(["synth", str(tmp_path / "data"), "--train", "0", "--validation", "3",
                      "--config", str(ROOT / "configs/synth/demo.json"), "--no-degrade"]) == 0  # ocr2-data, in-process
    proc = subprocess.run([sys.executable, "-m", "eval.research.compression_study", "--model", str(tmp_path / "model"),
                           "--data", str(tmp_path / "data"), "--pages", "3", "--max-new-tokens", "4", "--no-crops",
                           "--out", str(tmp_path / "out")], cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "compression.json").read_text())
    assert {r["budget"] for r in rows} == {"global 128px", "global 192px", "global 256px"}
    assert {r["vision_tokens"] for r in rows} == {5, 10, 17}  # (s/64)² + the view separator
    assert (tmp_path / "out" / "compression.png").stat().st_size > 0


def test_study_reads_in_v1_resolution_modes(tmp_path):
    from ocr2 import OCR2Config
    from ocr2.query_tables import with_query_tables

    torch.manual_seed(0)
    cfg = with_query_tables(OCR2Config.from_preset("tiny"), ["tiny", "base"])  # adds the 512 px query table
    save_with_tokenizer(OCR2Model(cfg), ByteTokenizer(), tmp_path / "model")
    assert data_main(["synth", str(tmp_path / "data"), "--train", "0", "--validation", "2",
                      "--config", str(ROOT / "configs/synth/demo.json"), "--no-degrade"]) == 0  # ocr2-data, in-process
    proc = subprocess.run([sys.executable, "-m", "eval.research.compression_study", "--model", str(tmp_path / "model"),
                           "--data", str(tmp_path / "data"), "--pages", "2", "--max-new-tokens", "2",
                           "--modes", "tiny,base", "--out", str(tmp_path / "out")], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "compression.json").read_text())
    assert {r["vision_tokens"] for r in rows} == {65, 257}  # v1 Tiny 64 and Base 256 tokens, + separator
    assert {r["budget"].split()[0] for r in rows} == {"tiny", "base"}

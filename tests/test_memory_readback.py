"""Optical memory read-back at toy scale: glyph-grid turn pages, and the experiment's NED per tier end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch

from ocr2 import OCR2Model
from eval.research.memory import GlyphGridRenderer
from ocr2.pipeline import save_with_tokenizer
from ocr2.processing.text import ByteTokenizer
from train_harness import ROOT, env


def test_glyph_grid_turn_pages_put_one_glyph_in_each_cell_and_start_turns_on_new_lines():
    renderer = GlyphGridRenderer()
    pages = renderer.layout(["ABCDEFG", "HIJ", "KLMNOPQRS"])
    assert pages[0].lines == ("ABCD", "EFG", "HIJ", "KLMN") and pages[1].lines == ("OPQR", "S")
    assert pages[0].turns == (0, 1, 2) and pages[1].turns == (2,)
    ink = np.asarray(renderer.render(pages[1]).convert("L")) < 128
    for row, line in enumerate(pages[1].lines):
        for col in range(4):
            cell = ink[row * 64:(row + 1) * 64, col * 64:(col + 1) * 64]
            assert (cell.sum() > 20) == (col < len(line)), (row, col)
    assert not ink[128:].any()  # rows without a line stay blank


def test_glyph_grid_read_back_scores_every_tier_and_plots(tmp_path):
    from hydra import compose, initialize_config_dir

    from train.builders import build_model_config

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=memory_tiers"])
    torch.manual_seed(0)
    save_with_tokenizer(OCR2Model(build_model_config(cfg.model)), ByteTokenizer(), tmp_path / "model")
    proc = subprocess.run([sys.executable, "-m", "eval.research.memory_experiment", "--out", str(tmp_path / "out"),
                           "--turns", "1,4", "--checkpoint", str(tmp_path / "model"), "--glyph-grid", "--pages", "1",
                           "--max-new-tokens", "4"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tiers = json.loads((tmp_path / "out" / "results.json").read_text())["read_back"]["tiers"]
    assert list(tiers) == ["256px", "192px", "128px"]
    assert [t["tokens_per_page"] for t in tiers.values()] == [[17], [10], [5]]  # (s/64)² + view separator
    assert not any(t["untrained_query_table"] for t in tiers.values())  # memory_tiers trains all three sizes
    assert all(0.0 <= t["ned"] <= 1.0 for t in tiers.values())
    assert (tmp_path / "out" / "read_back.png").stat().st_size > 0

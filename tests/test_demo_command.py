"""`make demo` (python -m eval.demo) end to end at toy scale: synth -> score -> ocr2-train -> score -> table + plots."""

from __future__ import annotations

import subprocess
import sys

import pytest

from train_harness import ROOT, env


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reports_before_after_and_vision_gain(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "eval.demo", "--data", str(tmp_path / "data"), "--run-dir",
                           str(run_dir), "--train-pages", "16", "--eval-pages", "4", "--steps", "2",
                           "--max-new-tokens", "8", "--tokenizer-steps", "3",
                           "checkpoint.every=2"],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = (run_dir / "demo_metrics.md").read_text()
    # Both held-out splits, before and after: pages drawn like the training pages and the unseen renderings.
    for model in ("untrained", "trained"):
        for split in ("validation", "validation_unseen"):
            assert f"| {model} | {split} | 4 |" in report, report
    assert "held-out page NED, in-distribution (validation)" in report
    assert "held-out page NED, unseen renderings (validation_unseen)" in report
    assert "vision gain" in report and "visual variation" in report
    # The reader started from the pretrained vision tokenizer, whose glyph accuracy is reported per split.
    assert "glyph accuracy of the pretrained vision tokenizer" in report and "unseen renderings 0." in report
    assert (run_dir / "tokenizer" / "tokenizer_pretrain.json").exists()
    assert (run_dir / "loss.png").stat().st_size > 0 and (run_dir / "ned.png").stat().st_size > 0

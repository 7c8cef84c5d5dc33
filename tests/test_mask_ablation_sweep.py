"""The mask ablation at toy scale: one `ocr2-train -m` sweep trains each variant, `ocr2-report --evaluate` scores
them with the views they trained on and writes the table (with vision_gain) and the plots."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from data_pipelines.cli import main as data_main
from train_harness import ROOT, env


@pytest.mark.slow
def test_one_sweep_trains_every_variant_and_the_report_tables_them(tmp_path):
    data, sweep, out = tmp_path / "data", tmp_path / "multirun", tmp_path / "report"
    assert data_main(["synth", str(data), "--train", "8", "--validation", "2",
                      "--config", str(ROOT / "configs/synth/ablation.json"), "--no-degrade"]) == 0  # in-process
    proc = subprocess.run([sys.executable, "-m", "train", "-m", "experiment=mask_ablation", f"data.path={data}",
                           f"hydra.sweep.dir={sweep}", "model.encoder.mask=causal_flow,raster", "max_steps=2",
                           "trainer.micro_batch_size=2", "data.num_workers=1", "checkpoint.every=2", "logger=none"],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = subprocess.run([sys.executable, "-m", "eval.report", str(sweep), "--evaluate", "--eval-pages", "2",
                           "--max-new-tokens", "4", "--out", str(out)],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = (out / "report.md").read_text()
    assert "| mask=causal_flow | 2 |" in report and "| mask=raster | 2 |" in report and "vision_gain" in report
    for name in ("loss", "page_ned", "reading_order_edit", "vision_gain"):
        assert (out / f"{name}.png").stat().st_size > 0, name
    scored = json.loads(next(sweep.rglob("eval/metrics.json")).read_text())
    assert scored["protocol"]["views"] == "single:256"  # the ablation trains on single views and is read with them
    assert "delta_shuffle" in report and next(sweep.rglob("eval/query_ablation.json")).exists()

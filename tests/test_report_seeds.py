"""ocr2-report over repeated sweeps (same variants, other seeds): per-variant mean ± std and spread plots."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from eval.report import main as report_main
from eval.report_seeds import format_mean_std, seed_summary


def test_mean_and_sample_std():
    assert format_mean_std([0.2, 0.4]) == "0.300 ± 0.141"


def test_one_value_has_no_spread_and_missing_values_are_skipped():
    assert format_mean_std([0.25, None]) == "0.250"
    assert format_mean_std([None]) is None


def test_seed_summary_groups_by_label_in_order():
    rows = [{"run": "b", "seed": 0, "x": 1.0}, {"run": "a", "seed": 0, "x": 2.0}, {"run": "b", "seed": 1, "x": 3.0}]
    assert seed_summary(rows, ["x"]) == [{"run": "b", "runs": 2, "seeds": "0, 1", "x": "2.000 ± 1.414"},
                                         {"run": "a", "runs": 1, "seeds": "0", "x": "2.000"}]


def _fake_run(run: Path, mask: str, seed: int, ned: float) -> None:
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "model": {"encoder": {"mask": mask}}}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 2.0 / s}) + "\n" for s in (1, 2)))
    (run / "eval" / "metrics.json").write_text(json.dumps({"summary": {"page_ned": ned}}))


def test_report_over_two_seeded_sweeps(tmp_path):
    for seed, sweep in enumerate(["sweep", "sweep_seed1"]):
        _fake_run(tmp_path / sweep / "0", "causal_flow", seed, 0.2 + 0.2 * seed)
        _fake_run(tmp_path / sweep / "1", "raster", seed, 0.1)
    assert report_main([str(tmp_path / "sweep"), str(tmp_path / "sweep_seed1"), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| mask=causal_flow, seed=1 | 2 |" in report
    assert "| mask=causal_flow | 2 | 0, 1 | 1.000 ± 0.000 | 0.300 ± 0.141 |" in report
    assert (tmp_path / "out" / "page_ned_seeds.png").stat().st_size > 0

"""eval/research/layout_breakdown.py: scored runs -> page NED and reading-order figures per layout type, per variant
over seeds."""

import json

import pytest
import yaml

from data_pipelines.build_synth import build_synth
from data_pipelines.synth.config import SynthConfig
from eval.pages import iter_pages
from eval.research.layout_breakdown import main, page_layouts
from eval.research.reading_order_pages import layout_type
from train_harness import ROOT


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("order") / "data"
    build_synth(path, {"train": 1, "validation": 12}, SynthConfig.load(ROOT / "configs/synth/order_varied.json"))
    return path


def _run(root, name, data, seed, mask, ned_by_layout, tau=None):
    run = root / name
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "data": {"path": str(data)},
                                                     "model": {"encoder": {"mask": mask}}}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    layouts = page_layouts(str(data), "validation", None)
    pages = {stem: {"page_ned": ned_by_layout[layout], "reading_order_edit": 0.0} for stem, layout in layouts.items()}
    (run / "eval" / "metrics.json").write_text(json.dumps({"summary": {}, "pages": pages}))
    if tau is not None:
        (run / "eval" / "reading_order.json").write_text(json.dumps({"by_layout": {
            layout: {"argmax": {"tau_raster": tau, "tau_reading": -tau}} for layout in set(layouts.values())}}))
    return run


def test_pages_get_the_layout_type_of_their_blocks(data):
    layouts = page_layouts(str(data), "validation", None)
    pages = list(iter_pages(str(data), "validation"))
    assert layouts == {p.stem: layout_type(p.gt_page["layout_dets"]) for p in pages}
    assert "1-column" in layouts.values() and "2-column" in layouts.values()  # the mixed ablation pages


def test_seeds_of_a_variant_are_averaged_per_layout(data, tmp_path):
    ned = [{"1-column": 0.1, "2-column": 0.5, "3-column": 0.7}, {"1-column": 0.3, "2-column": 0.7, "3-column": 0.9}]
    for seed in (0, 1):
        _run(tmp_path / "runs", f"flow_s{seed}", data, seed, "causal_flow", ned[seed], tau=0.5)
    _run(tmp_path / "runs", "raster_s0", data, 0, "raster", {"1-column": 0.0, "2-column": 0.2, "3-column": 0.4})
    assert main([str(tmp_path / "runs"), "--keys", "model.encoder.mask", "--out", str(tmp_path / "out")]) == 0
    rows = {(r["variant"], r["layout"]): r for r in
            json.loads((tmp_path / "out" / "layout_breakdown.json").read_text())["variants"]}
    assert rows[("mask=causal_flow", "1-column")]["page_ned"] == "0.200 ± 0.141"
    assert rows[("mask=causal_flow", "2-column")]["page_ned"] == "0.600 ± 0.141"
    assert rows[("mask=causal_flow", "2-column")]["seeds"] == "0, 1"
    assert rows[("mask=causal_flow", "2-column")]["tau_reading"] == "-0.500 ± 0.000"
    assert rows[("mask=raster", "2-column")]["tau_reading"] == "n/a"  # no flow queries, no reading path
    assert (tmp_path / "out" / "layout_breakdown.png").stat().st_size > 10_000


def test_an_unscored_run_is_a_clear_error(data, tmp_path):
    run = _run(tmp_path, "r", data, 0, "causal_flow", {"1-column": 0.1, "2-column": 0.5, "3-column": 0.7})
    (run / "eval" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="not scored.*--evaluate"):
        main([str(run), "--out", str(tmp_path / "out")])

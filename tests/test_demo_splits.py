"""eval/demo.py scores every held-out split its dataset has, and rebuilds a dataset drawn from other settings."""

import argparse

from data_pipelines.build_synth import build_synth
from data_pipelines.synth.config import SynthConfig
from eval import demo
from train_harness import ROOT

CONFIG = "configs/synth/demo_varied.json"


def _args(train=2, eval_pages=2, config=CONFIG):
    return argparse.Namespace(synth_config=config, train_pages=train, eval_pages=eval_pages)


def test_the_demo_scores_in_distribution_and_unseen_renderings(tmp_path):
    build_synth(tmp_path, {"train": 2, "validation": 2}, SynthConfig.load(ROOT / CONFIG))
    assert demo._held_out_splits(tmp_path) == ["validation", "validation_unseen"]
    assert demo.HELD_OUT == {"validation": "in-distribution", "validation_unseen": "unseen renderings"}


def test_a_dataset_from_another_config_or_page_count_is_not_reused(tmp_path):
    assert not demo._dataset_is_current(tmp_path, _args())  # nothing there yet
    build_synth(tmp_path, {"train": 2, "validation": 2}, SynthConfig.load(ROOT / CONFIG))
    assert demo._dataset_is_current(tmp_path, _args())
    assert not demo._dataset_is_current(tmp_path, _args(train=3))
    assert not demo._dataset_is_current(tmp_path, _args(config="configs/synth/demo.json"))

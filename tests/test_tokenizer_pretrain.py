"""Vision-tokenizer pretraining on glyph-grid pages: labels per visual token, the command, and its use by ocr2-train."""

import json

import pytest
import torch

from data_pipelines.build_synth import build_synth
from data_pipelines.synth.config import SynthConfig
from data_pipelines.synth.page import PageGenerator
from ocr2 import OCR2Model
from ocr2.data.glyph_labels import glyph_labels
from ocr2.data.skips import BadSample
from ocr2.processing.views import ViewRecipe
from train import tokenizer_pretrain
from train_harness import ROOT

CONFIG = ROOT / "configs/synth/demo_varied.json"
VIEW = ViewRecipe("single:256", 256, None)


def _block(x0, y0, x1, y1, text):
    return {"poly": [x0, y0, x1, y0, x1, y1, x0, y1], "text": text, "category_type": "text_block"}


def test_each_glyph_labels_the_token_of_its_cell_and_the_rest_are_blank():
    labels = glyph_labels([_block(64, 0, 192, 64, "AB"), _block(0, 192, 64, 256, "Z")], (256, 256), VIEW, 4)
    expected = torch.zeros(16, dtype=torch.long)
    expected[1], expected[2], expected[12] = 1 + ord("A"), 1 + ord("B"), 1 + ord("Z")
    assert torch.equal(labels, expected)


def test_a_page_larger_than_the_view_is_mapped_through_the_view_resize():
    # A 512² page read as a 256² view: a block two 128 px cells wide covers two 64 px token cells.
    labels = glyph_labels([_block(256, 128, 512, 256, "QR")], (512, 512), VIEW, 4)
    assert labels.nonzero().flatten().tolist() == [6, 7]


def test_the_generators_pages_label_every_drawn_glyph():
    page = PageGenerator(SynthConfig.load(CONFIG)).page(3)
    labels = glyph_labels(page.blocks, page.image.size, VIEW, 4)
    assert int((labels > 0).sum()) == sum(len(b["text"]) for b in page.blocks)


def test_a_block_that_is_not_one_glyph_per_cell_is_refused_naming_the_sample():
    with pytest.raises(BadSample, match="page-7.*'ABC'.*not one glyph per cell"):
        glyph_labels([_block(0, 0, 128, 64, "ABC")], (256, 256), VIEW, 4, "page-7")


def test_a_block_off_the_cell_grid_is_refused():
    with pytest.raises(BadSample, match="not on the 64.0 px cell grid"):
        glyph_labels([_block(30, 0, 94, 64, "A")], (256, 256), VIEW, 4)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    data = root / "data"
    build_synth(data, {"train": 24, "validation": 8}, SynthConfig.load(CONFIG))
    out = root / "tok"
    record = tokenizer_pretrain.main(["--out", str(out), "--steps", "30", "--batch-size", "8", "--eval-every", "15",
                                      "--eval-pages", "8", "--log-every", "10", "experiment=demo",
                                      f"data.path={data}"])
    return data, out, record


def test_pretraining_lowers_the_glyph_loss(pretrained):
    _, _, record = pretrained
    losses = [loss for _, loss in record["loss"]]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, losses


def test_every_held_out_split_is_scored_at_each_save(pretrained):
    _, out, _ = pretrained
    saved = json.loads((out / "tokenizer_pretrain.json").read_text())
    assert [row["step"] for row in saved["accuracy"]] == [15, 30]
    assert set(saved["accuracy"][-1]) == {"step", "validation", "validation_unseen"}
    assert saved["skipped"] == {}


def test_the_saved_tokenizer_is_what_init_modules_loads_and_the_rest_is_the_runs_fresh_build(pretrained):
    from hydra import compose, initialize_config_dir

    from configs import CONFIG_DIR
    from train.init_model import build_start

    data, out, _ = pretrained
    saved = OCR2Model.from_pretrained(out)
    overrides = ["experiment=demo", f"data.path={data}", f"init_from={out}", "init_modules=[vision_tokenizer]"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    torch.manual_seed(int(cfg.seed))
    run = build_start(cfg).model
    for key, value in saved.state_dict().items():
        # the tokenizer is the pretrained one; encoder and decoder are the same fresh weights (same seed)
        assert torch.equal(run.state_dict()[key], value), key


def test_a_page_with_unreadable_blocks_is_skipped_and_counted():
    from ocr2.data.skips import SkipCounter

    skips = SkipCounter()
    batches = tokenizer_pretrain.GlyphBatches(VIEW, 4, skips)
    assert batches.example({"id": "p1", "image": None, "blocks": "{not json"}) is None
    assert skips.counts() == {"bad_record": 1}


def test_the_glyph_head_is_where_the_glyph_probe_reads_it(pretrained):
    # eval/research/glyph_probe.py keeps its own copy of the path (eval does not import train)
    from eval.research import glyph_probe

    _, out, _ = pretrained
    assert glyph_probe.HEAD_FILE == tokenizer_pretrain.HEAD_FILE and (out / glyph_probe.HEAD_FILE).is_file()

"""eval.research.glyph_probe: the pretrained tokenizer's glyph accuracy per held-out rendering factor."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from data_pipelines import SynthConfig
from eval.research import glyph_probe as gp
from ocr2 import OCR2Config, OCR2Model
from ocr2.data.examples import open_image
from ocr2.data.glyph_labels import NUM_CLASSES, glyph_labels
from ocr2.processing.reading import ReadingRecipe
from ocr2.processing.views import get_recipe
from train_harness import ROOT

DEMO = ROOT / "configs/synth/demo_varied.json"
RECIPE = get_recipe("single:256")
HELD_OUT = {"grid_fonts": ["cm_roman", "cm_typewriter"], "grid_glyph_size": [[0.45, 0.52], [0.83, 0.9]],
            "grid_shift": 0.125, "grid_jitter": 0.125}


def _config(tmp_path, **changes):
    """demo_varied with two training faces (fewer rows to render); `changes` replace its fields."""
    d = json.loads(DEMO.read_text())
    d.update({"grid_fonts": ["dejavu_sans", "stix"], "extra_splits": {"validation_unseen": HELD_OUT}, **changes})
    path = tmp_path / "synth.json"
    path.write_text(json.dumps(d))
    return path


def _names(conds):
    return [c.name for c in conds]


def test_the_demo_configs_rows_are_its_held_out_factors_one_by_one_then_together_then_each_training_face():
    cfg = SynthConfig.load(DEMO)
    held = cfg.extra_splits["validation_unseen"]
    conds = gp.conditions(cfg, gp.default_split(cfg))
    assert _names(conds) == [
        "training ranges",
        *(f"held-out face: {f}" for f in held["grid_fonts"]),
        "held-out size: 0.45-0.52", "held-out size: 0.83-0.9",
        "held-out offsets: shift 0.125, jitter 0.125",
        "all held out",
        *(f"training face: {f}" for f in cfg.grid_fonts)]
    offsets = next(c for c in conds if c.factor == "offsets")
    assert offsets.changes == {"grid_shift": 0.125, "grid_jitter": 0.125}
    assert offsets.config.grid_fonts == cfg.grid_fonts and offsets.config.grid_glyph_size == cfg.grid_glyph_size
    assert all(c.config.grid_plain == 0 and not c.config.extra_splits for c in conds)


def test_another_configs_split_gives_its_own_factors_and_no_split_gives_training_and_faces(tmp_path):
    path = _config(tmp_path, extra_splits={"odd": {"grid_fonts": ["cm_sans"], "grid_ink": [100, 120]}})
    cfg = SynthConfig.load(path)
    conds = gp.conditions(cfg, gp.default_split(cfg))
    assert _names(conds) == ["training ranges", "held-out face: cm_sans", "held-out ink: [100, 120]", "all held out",
                             "training face: dejavu_sans", "training face: stix"]
    assert conds[2].config.grid_ink == (100, 120) and conds[2].config.grid_fonts == ("dejavu_sans", "stix")
    plain = SynthConfig.load(_config(tmp_path, extra_splits={}))
    assert gp.default_split(plain) is None
    assert _names(gp.conditions(plain, None)) == ["training ranges", "training face: dejavu_sans",
                                                  "training face: stix"]
    with pytest.raises(ValueError, match=r"synth.json: no extra split 'validation_unseen'"):
        gp.conditions(plain, "validation_unseen", path)


def test_each_rows_pages_are_drawn_under_its_condition(tmp_path):
    cfg = SynthConfig.load(_config(tmp_path))
    cell = cfg.grid_cell
    conds = {c.name: c for c in gp.conditions(cfg, "validation_unseen")}

    def pages(name):
        got = list(gp.condition_pages(conds[name], 4))
        assert [p.seed for p in got] == [gp.SEED_BASE + i for i in range(4)]
        assert not any(p.rendering["plain"] for p in got)  # no anchor pages in any row
        return [p.rendering for p in got]

    def sizes_within(renderings, ranges):
        return all(any(lo - 0.5 / cell <= r["size"] / cell <= hi + 0.5 / cell for lo, hi in ranges)
                   for r in renderings)

    train_sizes = [cfg.grid_glyph_size]
    for face in HELD_OUT["grid_fonts"]:
        drawn = pages(f"held-out face: {face}")
        assert {r["face"] for r in drawn} == {face} and sizes_within(drawn, train_sizes)
    for face in cfg.grid_fonts:
        assert {r["face"] for r in pages(f"training face: {face}")} == {face}
    for lo, hi in HELD_OUT["grid_glyph_size"]:
        drawn = pages(f"held-out size: {lo:g}-{hi:g}")
        assert sizes_within(drawn, [(lo, hi)]) and {r["face"] for r in drawn} <= set(cfg.grid_fonts)
    drawn = pages("held-out offsets: shift 0.125, jitter 0.125")
    assert max(max(map(abs, r["shift"])) for r in drawn) <= round(0.125 * cell)
    # beyond the training offsets somewhere (up to 8 + 8 px), and inside the held-out ones (8 + 8 px each way)
    assert max(abs(d) for r in drawn for o in r["offsets"] for d in o) > round(0.08 * cell)
    assert sizes_within(drawn, train_sizes) and {r["face"] for r in drawn} <= set(cfg.grid_fonts)
    drawn = pages("all held out")
    assert {r["face"] for r in drawn} <= set(HELD_OUT["grid_fonts"])
    assert sizes_within(drawn, HELD_OUT["grid_glyph_size"])
    drawn = pages("training ranges")
    assert {r["face"] for r in drawn} <= set(cfg.grid_fonts) and sizes_within(drawn, train_sizes)


class Oracle(torch.nn.Module):
    """A "tokenizer" that knows each probed page's labels (looked up by its pixels) and emits them one-hot, so that
    an identity head names every cell right; `blank=True`: calls every cell empty."""

    def __init__(self, lookup: dict[bytes, torch.Tensor], blank: bool = False):
        super().__init__()
        self.lookup, self.blank = lookup, blank

    def num_tokens(self, h, w):
        return (h // 64) * (w // 64)

    def forward(self, pixels):
        labels = torch.stack([self.lookup[p.numpy().tobytes()] for p in pixels])
        return torch.nn.functional.one_hot(labels * (not self.blank), NUM_CLASSES).float()


def _lookup(conds, pages):
    lookup = {}
    for cond in conds:
        for page in gp.condition_pages(cond, pages):
            image = open_image(page.image, page.id)
            lookup[RECIPE.views(image).global_view.numpy().tobytes()] = glyph_labels(page.blocks, image.size, RECIPE, 4)
    return lookup


def test_a_head_that_names_every_cell_right_scores_one_and_one_that_sees_nothing_scores_zero(tmp_path):
    conds = gp.conditions(SynthConfig.load(_config(tmp_path)), "validation_unseen")
    lookup = _lookup(conds, 3)
    result = gp.glyph_probe(Oracle(lookup), torch.nn.Identity(), RECIPE, conds, pages=3, batch_size=2,
                            progress=False)
    assert _names(conds) == [r["condition"] for r in result["rows"]]
    for row in result["rows"]:
        assert row["pages"] == 3 and row["glyph_cells"] > 0 and row["blank_cells"] > 0, row
        assert row["glyph_accuracy"] == 1.0 and row["blank_accuracy"] == 1.0 and row["delta_glyph"] == 0.0
        assert row["skipped"] == {}
    blind = gp.glyph_probe(Oracle(lookup, blank=True), torch.nn.Identity(), RECIPE, conds[:2], pages=3,
                           progress=False)
    assert all(r["glyph_accuracy"] == 0.0 and r["blank_accuracy"] == 1.0 for r in blind["rows"])


def test_the_standard_error_is_over_pages():
    assert gp._stats([5, 5], [10, 10]) == (0.5, 0.0)  # every page at the mean: no spread
    p, se = gp._stats([10, 0], [10, 10])
    assert p == 0.5 and se == pytest.approx(0.5)
    assert math.isnan(gp._stats([], [])[0])


def _tokenizer_dir(tmp_path, head: bool = True):
    torch.manual_seed(0)
    cfg = OCR2Config.from_preset("tiny")
    cfg.global_view_size, cfg.encoder.query_view_sizes = 256, (256,)
    out = tmp_path / "tok"
    OCR2Model(cfg).save_pretrained(out, reading=ReadingRecipe(views="single:256"))
    if head:
        linear = torch.nn.Linear(cfg.encoder.hidden_size, NUM_CLASSES)
        (out / "glyph_head").mkdir()
        save_file({k: v.contiguous() for k, v in linear.state_dict().items()}, str(out / gp.HEAD_FILE))
    return out


def test_the_command_writes_the_table_json_and_plot(tmp_path, capsys):
    tok, config, out = _tokenizer_dir(tmp_path), _config(tmp_path), tmp_path / "probe"
    assert gp.main(["--tokenizer", str(tok), "--synth-config", str(config), "--pages", "2", "--out", str(out)]) == 0
    result = json.loads((out / "glyph_probe.json").read_text())
    names = _names(gp.conditions(SynthConfig.load(config), "validation_unseen"))
    assert [r["condition"] for r in result["rows"]] == names
    assert all(0 <= r["glyph_accuracy"] <= 1 and r["pages"] == 2 for r in result["rows"])
    p = result["protocol"]
    assert (p["tokenizer"], p["config"], p["split"], p["view"]) == (str(tok), str(config), "validation_unseen",
                                                                    "single:256")
    assert p["pages_per_condition"] == 2 and p["seeds"] == [gp.SEED_BASE, gp.SEED_BASE + 1]
    table = (out / "glyph_probe.md").read_text()
    assert all(f"| {n} | 2 |" in table for n in names) and table in capsys.readouterr().out
    assert (out / "glyph_probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_directory_without_the_head_is_an_error_naming_the_file(tmp_path):
    tok = _tokenizer_dir(tmp_path, head=False)
    with pytest.raises(FileNotFoundError, match=r"tok/glyph_head/head\.safetensors: no glyph head"):
        gp.main(["--tokenizer", str(tok), "--pages", "1", "--out", str(tmp_path / "probe")])


def test_a_head_of_the_wrong_shape_is_an_error_naming_the_file(tmp_path):
    tok = _tokenizer_dir(tmp_path, head=False)
    (tok / "glyph_head").mkdir()
    save_file({"weight": torch.zeros(3, 5), "bias": torch.zeros(3)}, str(tok / gp.HEAD_FILE))
    with pytest.raises(ValueError, match=r"head\.safetensors: not a glyph head for this model"):
        gp.load_probe(tok)

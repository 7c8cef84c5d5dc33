"""The demo's glyph-grid pages vary what a reader must ignore, within the ranges its synth config names, and its
held-out `validation_unseen` split is drawn outside them (configs/synth/demo_varied.json)."""

import json

import numpy as np
import pytest

from data_pipelines.build_synth import build_synth
from data_pipelines.synth.config import SynthConfig
from data_pipelines.synth.glyph_fonts import GLYPH_FACES, face_path, families
from data_pipelines.synth.page import PageGenerator
from train_harness import ROOT

CONFIG = SynthConfig.load(ROOT / "configs/synth/demo_varied.json")
TRAIN, UNSEEN = CONFIG, CONFIG.for_split("validation_unseen")


def _px(cfg, ranges=None):
    """The font sizes in px a config can draw (sizes are rounded to whole pixels)."""
    return [(round(cfg.grid_cell * lo), round(cfg.grid_cell * hi)) for lo, hi in ranges or cfg.glyph_size_ranges()]


def _renderings(cfg, seeds):
    gen = PageGenerator(cfg)
    return [gen.page(seed).rendering for seed in seeds]


def test_every_face_ships_with_matplotlib():
    for name in GLYPH_FACES:
        assert face_path(name).endswith(GLYPH_FACES[name].file)


def test_training_pages_vary_face_size_offset_and_shade_within_their_ranges():
    drawn = _renderings(TRAIN, range(40))
    (lo, hi), = _px(TRAIN)
    limit = round(64 * TRAIN.grid_shift) + round(64 * TRAIN.grid_jitter)
    for r in drawn:
        assert r["face"] in TRAIN.grid_fonts and lo <= r["size"] <= hi
        assert all(abs(dx) <= limit and abs(dy) <= limit for dx, dy in r["offsets"])
        assert TRAIN.grid_ink[0] <= r["ink"][0] <= TRAIN.grid_ink[1]
        assert TRAIN.grid_background[0] <= r["background"][0] <= TRAIN.grid_background[1]
    # Two seeds differ: more than one face, size, shift and shade over 40 pages, and offsets within a page.
    for key in ("face", "size", "shift", "ink", "background"):
        assert len({r[key] for r in drawn}) > 1, key
    assert len(set(drawn[0]["offsets"])) > 1
    assert len({families([r["face"]]).pop() for r in drawn}) == len(families(TRAIN.grid_fonts))


def test_a_seed_draws_the_same_page_every_time():
    a, b = PageGenerator(TRAIN).page(7), PageGenerator(TRAIN).page(7)
    assert a.rendering == b.rendering and a.markdown == b.markdown
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_unseen_split_uses_only_the_held_out_family_sizes_outside_training_and_quarter_cell_offsets():
    assert families(UNSEEN.grid_fonts).isdisjoint(families(TRAIN.grid_fonts))
    (train_lo, train_hi), = _px(TRAIN)
    drawn = _renderings(UNSEEN, range(40))
    quarter = 64 // 4
    for r in drawn:
        assert r["face"] in UNSEEN.grid_fonts and GLYPH_FACES[r["face"]].family == "computer_modern"
        assert not train_lo <= r["size"] <= train_hi, r["size"]
        assert all(abs(dx) <= quarter and abs(dy) <= quarter for dx, dy in r["offsets"])
    sizes = {r["size"] for r in drawn}
    assert min(sizes) < train_lo and max(sizes) > train_hi  # both smaller and larger than any training glyph
    train_limit = round(64 * TRAIN.grid_shift) + round(64 * TRAIN.grid_jitter)
    assert max(max(abs(dx), abs(dy)) for r in drawn for dx, dy in r["offsets"]) > train_limit


def test_glyphs_pushed_to_the_edge_stay_on_the_page():
    gen = PageGenerator(UNSEEN)
    for seed in range(20):
        page = gen.page(seed)
        ink = np.asarray(page.image.convert("L")) < page.rendering["background"][0] - 60
        # A glyph cut by the page edge would leave ink on the outermost pixel rows and columns.
        assert not (ink[0].any() or ink[-1].any() or ink[:, 0].any() or ink[:, -1].any()), seed


def test_the_held_out_split_is_written_beside_validation(tmp_path):
    info = build_synth(tmp_path / "ds", {"train": 2, "validation": 3}, CONFIG)
    assert info["splits"] == {"train": 2, "validation": 3, "validation_unseen": 3}
    saved = json.loads((tmp_path / "ds" / "ocr2_dataset.json").read_text())
    assert saved["config"]["extra_splits"]["validation_unseen"]["grid_fonts"] == list(UNSEEN.grid_fonts)


@pytest.mark.parametrize("change, message", [
    ({"grid_ink": (0, 200), "grid_background": (180, 255)}, "must be darker than grid_background"),
    ({"grid_fonts": ("comic_sans",)}, "grid_fonts: unknown"),
    ({"grid_jitter": 0.7}, "grid_jitter must be within"),
    ({"grid_glyph_size": ((0.5, 0.4),)}, "grid_glyph_size must be"),
    ({"extra_splits": {"train": {}}}, "must be a new split name"),
    ({"extra_splits": {"unseen": {"grid_shift": 2.0}}}, "grid_shift must be within"),
])
def test_bad_nuisance_ranges_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**change)


def test_anchor_pages_are_a_training_share_only():
    drawn = _renderings(TRAIN.for_split("train"), range(100))
    plain = [r for r in drawn if r["plain"]]
    assert 15 <= len(plain) <= 45  # grid_plain 0.3 of 100 pages
    assert all(r["face"] == TRAIN.grid_fonts[0] and set(r["offsets"]) == {(0, 0)} for r in plain)
    for split in ("validation", "validation_unseen"):
        assert TRAIN.for_split(split).grid_plain == 0.0
        assert not any(r["plain"] for r in _renderings(TRAIN.for_split(split), range(40))), split

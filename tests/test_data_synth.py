"""Synthetic pages: deterministic from the seed, ground truth consistent with the pixels, reading order that a
raster scan does not give, every layout and the Chinese path."""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from data_pipelines.synth import fonts
from data_pipelines.synth.config import DegradeConfig, SynthConfig
from data_pipelines.synth.degrade import rotate_polys
from data_pipelines.synth.page import PageGenerator, page_seed
from ocr2.data.markdown import blocks_to_markdown

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SMALL = dict(long_side=(512, 512), languages={"en": 1.0})  # small pages keep the tests fast


def _gen(**overrides) -> PageGenerator:
    return PageGenerator(SynthConfig(**{**SMALL, **overrides}))


def test_same_seed_gives_the_same_page_and_other_seeds_differ():
    a, b = _gen().page(7), _gen().page(7)
    assert a.image.tobytes() == b.image.tobytes()
    assert (a.blocks, a.relations, a.markdown) == (b.blocks, b.relations, b.markdown)
    assert _gen().page(8).markdown != a.markdown


def test_page_seeds_depend_on_split_and_index_only():
    assert page_seed(0, "train", 5) == page_seed(0, "train", 5)
    assert len({page_seed(0, "train", i) for i in range(100)} | {page_seed(0, "validation", 0)}) == 101


@pytest.mark.parametrize("layout", ["single", "two_column", "three_column", "sidebar", "mixed"])
def test_every_layout_renders_consistent_ground_truth(layout):
    gen = _gen(layouts={layout: 1.0}, degrade=DegradeConfig().disabled())
    for seed in range(3):
        page = gen.page(seed)
        w, h = page.image.size
        assert max(w, h) == 512
        ordered = [b["order"] for b in page.blocks if b["order"] is not None]
        assert ordered == list(range(1, len(ordered) + 1)) and ordered
        for b in page.blocks:
            assert len(b["poly"]) == 8
            xs, ys = b["poly"][0::2], b["poly"][1::2]
            assert 0 <= min(xs) <= max(xs) <= w and 0 <= min(ys) <= max(ys) <= h
            if b["order"] is None:
                assert b["category_type"] in ("header", "footer", "page_number")
        assert page.markdown == blocks_to_markdown(page.blocks, page.relations) and page.markdown.strip()


def test_every_text_block_box_has_ink_under_it():
    page = _gen(degrade=DegradeConfig().disabled()).page(3)
    gray = np.asarray(page.image.convert("L"), dtype=np.int16)
    background = int(np.median(gray))
    for b in page.blocks:
        if b["text"]:
            x0, y0, x1, y1 = (int(v) for v in (b["poly"][0], b["poly"][1], b["poly"][4], b["poly"][5]))
            assert (np.abs(gray[y0:y1 + 1, x0:x1 + 1] - background) > 60).any(), b


def test_multi_column_reading_order_differs_from_raster_order():
    gen = _gen(layouts={"two_column": 1.0}, elements={"paragraph": 1.0}, degrade=DegradeConfig().disabled())
    page = gen.page(1)
    body = [b for b in page.blocks if b["order"] is not None]
    raster = sorted(body, key=lambda b: (round(b["poly"][1]), b["poly"][0]))
    assert [b["order"] for b in raster] != sorted(b["order"] for b in raster)


def test_a_paragraph_cut_by_a_column_break_is_one_paragraph_in_the_markdown():
    gen = _gen(layouts={"three_column": 1.0}, elements={"paragraph": 1.0}, fill=(1.0, 1.0),
               degrade=DegradeConfig().disabled())
    page = next(p for p in (gen.page(s) for s in range(10)) if p.relations)
    rel = page.relations[0]
    head, tail = page.blocks[rel["source_anno_id"]], page.blocks[rel["target_anno_id"]]
    assert tail["order"] == head["order"] + 1
    assert head["poly"][0] < tail["poly"][0]  # the continuation sits in the next column
    assert f"{head['text']} {tail['text']}" in page.markdown.split("\n\n")


def test_tables_are_html_in_the_markdown():
    gen = _gen(elements={"table": 1.0, "paragraph": 1.0}, layouts={"single": 1.0})
    page = next(p for p in (gen.page(s) for s in range(10)) if any(b["category_type"] == "table" for b in p.blocks))
    table = next(b for b in page.blocks if b["category_type"] == "table")
    assert table["html"].startswith("<table><tr><td>") and table["html"] in page.markdown


def test_chinese_without_a_cjk_font_is_skipped_with_one_message(monkeypatch, caplog):
    monkeypatch.setattr(fonts, "_warned", set())
    monkeypatch.setattr(fonts, "find_cjk_font", lambda *a, **k: None)
    monkeypatch.setattr("data_pipelines.synth.page.find_cjk_font", lambda *a, **k: None)
    with caplog.at_level(logging.WARNING, logger="ocr2.data.synth"):
        gens = [PageGenerator(SynthConfig(long_side=(384, 384), languages={"en": 1, "zh": 1})) for _ in range(2)]
    assert [r.message.startswith("Chinese pages skipped: no CJK font") for r in caplog.records] == [True]
    assert {gens[0].page(s).lang for s in range(6)} == {"en"}


def test_chinese_only_without_a_cjk_font_is_an_error(monkeypatch):
    monkeypatch.setattr("data_pipelines.synth.page.find_cjk_font", lambda *a, **k: None)
    with pytest.raises(ValueError, match="no language of"):
        PageGenerator(SynthConfig(languages={"zh": 1.0}))


def test_chinese_pages_render_with_a_given_font():
    # DejaVu has no Han glyphs (it draws boxes) but exercises the Chinese text, wrapping and markdown path.
    page = _gen(languages={"zh": 1.0}, cjk_font=DEJAVU).page(2)
    assert page.lang == "zh"
    assert sum("\u4e00" <= c <= "\u9fff" for c in page.markdown) > 50


def test_rotated_polys_follow_the_pixels():
    image = Image.new("RGB", (200, 100), "white")
    ImageDraw.Draw(image).rectangle((150, 20, 153, 23), fill="black")
    block = {"poly": [150, 20, 153, 20, 153, 23, 150, 23]}
    rotated = image.rotate(10, resample=Image.Resampling.BILINEAR, fillcolor="white")
    rotate_polys([block], 10, 200, 100)
    ys, xs = np.nonzero(np.asarray(rotated.convert("L")) < 128)
    assert np.mean(block["poly"][0::2]) == pytest.approx(xs.mean(), abs=1.5)
    assert np.mean(block["poly"][1::2]) == pytest.approx(ys.mean(), abs=1.5)


def test_unknown_knob_values_are_named():
    with pytest.raises(ValueError, match="layouts: unknown \\['four_column'\\]"):
        SynthConfig(layouts={"four_column": 1.0})
    cfg = SynthConfig(long_side=(600, 700))
    assert SynthConfig.from_dict(dataclasses.asdict(cfg)) == cfg


def test_random_vocabulary_words_are_not_faker_words():
    # Text a language model cannot guess, so the page must be read (configs/synth/random_words.json).
    from faker.providers.lorem.en_US import Provider

    lorem = set(Provider.word_list)
    body_only = dict(elements={"paragraph": 1.0}, p_title=0.0, p_header=0.0, p_footer=0.0, p_page_number=0.0)
    page = _gen(vocabulary="random", word_length=(3, 5), **body_only).page(3)
    words = [w.strip(".,:").lower() for w in page.markdown.split()]
    assert words and all(3 <= len(w) <= 5 and w.isalpha() for w in words)
    assert sum(w in lorem for w in words) <= len(words) // 10  # chance collisions with short lorem words only
    assert _gen(vocabulary="random").page(3).markdown == _gen(vocabulary="random").page(3).markdown


def test_unknown_vocabulary_is_named():
    with pytest.raises(ValueError, match="vocabulary must be 'faker' or 'random'"):
        SynthConfig(vocabulary="klingon")


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs" / "synth").glob("*.json")),
                         ids=lambda p: p.name)
def test_shipped_synth_configs_load_and_render_text(path):
    page = PageGenerator(SynthConfig.load(path)).page(0)
    assert page.markdown.strip(), f"{path.name} renders a page without text"


def test_fonts_restrict_the_body_family():
    mono = _gen(fonts=("mono",), elements={"paragraph": 1.0}, p_title=0.0)
    for seed in range(3):
        assert mono.page(seed).markdown  # renders
    from data_pipelines.synth.style import sample_style
    import random

    style = sample_style(random.Random(0), mono.families, None, 512, (0.02, 0.02), 0.0, 0.0, ("mono",))
    assert style.body.name == "mono"
    with pytest.raises(ValueError, match="fonts: unknown \\['comic'\\]"):
        SynthConfig(fonts=("comic",))

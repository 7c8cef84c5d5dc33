"""One synthetic page from a seed: image + OmniDocBench blocks + markdown in reading order.

    gen = PageGenerator(SynthConfig())
    page = gen.page(seed=123)            # same seed, same page (pixels and ground truth), in any process
    page.image, page.markdown, page.blocks

The page seed fixes everything: a `random.Random(seed)` draws the language, size, layout and style, and seeds
faker for the text. `page_seed(base, split, index)` derives per-page seeds that do not depend on how pages are
spread over worker processes.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from data_pipelines.synth.canvas import Canvas
from data_pipelines.synth.config import SynthConfig, page_size
from data_pipelines.synth.content import TextSource
from data_pipelines.synth.degrade import degrade, paper_texture
from data_pipelines.synth.fonts import available_languages, cjk_family, find_cjk_font, latin_families
from data_pipelines.synth.glyph_columns import draw_glyph_columns
from data_pipelines.synth.glyph_grid import draw_glyph_grid, glyph_grid_style
from data_pipelines.synth.layout import compose
from data_pipelines.synth.style import pick, sample_style
from ocr2.data.markdown import blocks_to_markdown
from ocr2.data.schema import make_sample


# Layouts of one glyph per visual-token cell: drawn by these, with the page's ink and paper from SynthConfig.grid_*.
GLYPH_LAYOUTS = {"glyph_grid": draw_glyph_grid, "glyph_columns": draw_glyph_columns}


def page_seed(base: int, split: str, index: int) -> int:
    """A 63-bit seed for page `index` of `split` (hash-based: independent of PYTHONHASHSEED and of sharding)."""
    digest = hashlib.blake2b(f"{base}:{split}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@dataclass
class SyntheticPage:
    id: str
    seed: int
    image: Image.Image
    blocks: list[dict]
    relations: list[dict]
    markdown: str
    lang: str
    layout: str
    degradations: list[str] = field(default_factory=list)
    rendering: dict[str, Any] = field(default_factory=dict)  # glyph layouts: face, size, offsets (glyph_grid.py)

    def to_sample(self) -> dict[str, Any]:
        return make_sample(self.id, self.image, self.markdown, self.blocks, self.relations, source="synthetic",
                           lang=self.lang)


class PageGenerator:
    def __init__(self, config: SynthConfig | None = None):
        self.config = config or SynthConfig()
        self.families = latin_families(self.config.font_dirs)
        missing = [f for f in self.config.fonts or () if f not in self.families]
        if missing:
            raise ValueError(f"SynthConfig.fonts: {missing} not found in {list(self.config.font_dirs)} "
                             f"(found {sorted(self.families)})")
        wants_zh = self.config.languages.get("zh", 0) > 0
        self.cjk_path = find_cjk_font(self.config.font_dirs, self.config.cjk_font) if wants_zh else None
        self.languages = available_languages(self.config.languages, self.cjk_path)
        self._text: dict[str, TextSource] = {}

    def _source(self, lang: str) -> TextSource:
        if lang not in self._text:
            self._text[lang] = TextSource(lang, self.config.vocabulary, self.config.word_length)
        return self._text[lang]

    def page(self, seed: int, page_id: str | None = None) -> SyntheticPage:
        cfg = self.config
        rng = random.Random(seed)
        lang = pick(rng, self.languages)
        text = self._source(lang)
        text.reseed(rng.getrandbits(32))
        fmt = pick(rng, cfg.page_formats)
        width, height = page_size(fmt, rng.randint(*cfg.long_side))
        layout = pick(rng, cfg.layouts)
        if fmt in ("landscape", "slide") and layout == "sidebar":
            layout = "two_column"  # a sidebar squeezed next to a wide, short body reads like two columns anyway
        style = sample_style(rng, self.families, cjk_family(self.cjk_path) if lang == "zh" else None,
                             min(width, height), cfg.body_size, cfg.p_color_background, cfg.p_justify, cfg.fonts)
        if layout in GLYPH_LAYOUTS:
            style = glyph_grid_style(rng, style, cfg)
        canvas = Canvas(width, height, style.background)
        if rng.random() < cfg.p_paper_texture:
            canvas.image.paste(paper_texture(canvas.image, rng))
        rendering = {}
        if layout in GLYPH_LAYOUTS:
            rendering = GLYPH_LAYOUTS[layout](canvas, rng, style, cfg)
        else:
            compose(canvas, rng, text, style, layout, cfg)
        image, applied = degrade(canvas.image, canvas.blocks, rng, cfg.degrade, style.background)
        markdown = blocks_to_markdown(canvas.blocks, canvas.relations)
        return SyntheticPage(page_id or f"synth-{seed:016x}", seed, image, canvas.blocks, canvas.relations,
                             markdown, lang, layout, applied, rendering)

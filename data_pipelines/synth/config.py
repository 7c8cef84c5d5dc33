"""Knobs of the synthetic page generator. Mixes are {name: weight} (weights need not sum to 1)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_pipelines.synth.fonts import LATIN_FAMILIES
from data_pipelines.synth.glyph_fonts import GLYPH_FACES

# English word sources of data_pipelines.synth.content.TextSource.
VOCABULARIES = ("faker", "random")
# Page shapes as width / height.
PAGE_FORMATS = {"a4": 1 / 1.414, "letter": 8.5 / 11, "narrow": 0.6, "square": 1.0, "landscape": 1.414,
                "slide": 16 / 9}
LAYOUTS = ("single", "two_column", "three_column", "sidebar", "mixed", "glyph_grid", "glyph_columns")
ELEMENTS = ("paragraph", "heading", "list", "table", "pull_quote", "figure")


# Pages no reader can open are not worth rendering: at 8192 px the long side of an A4/letter page is ~48 MPx, under
# Pillow's 89.5 MPx decompression-bomb limit that ocr2.processing.image.load_image applies.
MAX_LONG_SIDE = 8192


def page_size(fmt: str, long_side: int) -> tuple[int, int]:
    """(width, height) in px of a page of format `fmt` (PAGE_FORMATS) whose long side is `long_side`."""
    aspect = PAGE_FORMATS[fmt]
    if aspect >= 1:
        return long_side, round(long_side / aspect)
    return round(long_side * aspect), long_side


@dataclass
class DegradeConfig:
    """Mild scan-like degradations, each applied with its probability."""

    p_rotate: float = 0.15
    max_angle: float = 1.5  # degrees
    p_blur: float = 0.15
    blur_radius: tuple[float, float] = (0.3, 0.9)
    p_noise: float = 0.15
    noise_sigma: tuple[float, float] = (2.0, 8.0)
    p_jpeg: float = 0.2
    jpeg_quality: tuple[int, int] = (45, 90)

    def disabled(self) -> "DegradeConfig":
        return dataclasses.replace(self, p_rotate=0.0, p_blur=0.0, p_noise=0.0, p_jpeg=0.0)


@dataclass
class SynthConfig:
    # Page long side in pixels, uniform in [lo, hi]; the other side follows the page format.
    long_side: tuple[int, int] = (1024, 1024)
    page_formats: dict[str, float] = field(default_factory=lambda: {
        "a4": 0.45, "letter": 0.25, "narrow": 0.05, "square": 0.05, "landscape": 0.12, "slide": 0.08})
    layouts: dict[str, float] = field(default_factory=lambda: {
        "single": 0.2, "two_column": 0.3, "three_column": 0.15, "sidebar": 0.15, "mixed": 0.2})
    languages: dict[str, float] = field(default_factory=lambda: {"en": 0.7, "zh": 0.3})
    # English words: "faker" (faker's lorem list, ~180 words) or "random" (random lowercase strings of
    # word_length letters: text a language model cannot guess, so it must be read from the page).
    vocabulary: str = "faker"
    word_length: tuple[int, int] = (2, 7)
    elements: dict[str, float] = field(default_factory=lambda: {
        "paragraph": 0.6, "heading": 0.12, "list": 0.09, "table": 0.07, "pull_quote": 0.04, "figure": 0.08})
    # Body font size as a fraction of the page's short side (1024x724 A4: 11-17 px).
    body_size: tuple[float, float] = (0.015, 0.024)
    margin: tuple[float, float] = (0.04, 0.09)  # fraction of the short side
    fill: tuple[float, float] = (0.55, 1.0)  # how much of the last body band gets content (1 = to the bottom)
    p_title: float = 0.75
    p_header: float = 0.6
    p_footer: float = 0.4
    p_page_number: float = 0.7
    p_color_background: float = 0.15
    p_paper_texture: float = 0.25
    p_justify: float = 0.5
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    # Latin font families to draw body text from (data_pipelines.synth.fonts.LATIN_FAMILIES: sans, serif,
    # sans_condensed, serif_condensed, mono); None: all but mono.
    fonts: tuple[str, ...] | None = None
    # glyph_grid layout (data_pipelines/synth/glyph_grid.py): one glyph per cell of grid_cell px (64 = one visual
    # token of the global view), grid_rows lines of grid_cols glyphs per text column, columns grid_column_gap cells
    # apart. The nuisances a reader must ignore, each drawn per page (per glyph for the jitter) from the page seed:
    # grid_fonts: glyph faces (data_pipelines.synth.glyph_fonts.GLYPH_FACES), one per page; None: the page's body
    # font. grid_glyph_size: font size as a fraction of the cell, [lo, hi] or a list of [lo, hi] ranges (uniform
    # over their union: a held-out split can ask for sizes on both sides of the training range). grid_shift: the
    # whole grid's offset per page, grid_jitter: each glyph's own offset, both up to +-this fraction of the cell
    # in x and y (the glyph is kept on the page). grid_ink / grid_background: grey levels (0-255) of ink and paper;
    # None: the page style's colours. grid_plain: the share of training pages drawn without face, size and offset nuisances
    # (the first face, the middle size, glyphs centred; shades, blur and noise still vary): anchor pages on which
    # the decoder first learns where each glyph sits, before it can tell varied glyphs apart (docs/demo.md).
    grid_cell: int = 64
    grid_rows: tuple[int, int] = (2, 4)
    grid_cols: tuple[int, int] = (2, 4)
    grid_columns: tuple[int, int] = (1, 1)
    grid_column_gap: int = 1
    grid_fonts: tuple[str, ...] | None = None
    grid_glyph_size: tuple = (0.69, 0.69)
    grid_shift: float = 0.0
    grid_jitter: float = 0.0
    grid_ink: tuple[int, int] | None = None
    grid_background: tuple[int, int] | None = None
    grid_plain: float = 0.0
    grid_alphabet: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    # glyph_columns layout (data_pipelines/synth/glyph_columns.py: the elements, their reading order and the
    # fitting rule): the glyph grid's cells, nuisances, grid_cols (glyphs per line) and grid_column_gap, laid out
    # so that reading order is not raster order. columns_count: text columns per page, [lo, hi]; every row below
    # the heading holds a line in each. columns_fewer: when the drawn count does not fit the page, draw the most
    # that do (never fewer than lo); False: a ValueError. columns_p_heading: the share of pages with a heading
    # line across the text columns in the top row. columns_p_figure: the share with a figure (no text) of
    # columns_figure_rows cells, [lo, hi], interrupting one column. columns_p_sidebar: the share with a sidebar of
    # columns_sidebar_width cells, [lo, hi], on a shaded panel at the left or right edge, columns_sidebar_gap
    # empty cells from the text columns, read last. SynthConfig refuses a config whose smallest page of some
    # format could ask for more than fits.
    columns_count: tuple[int, int] = (2, 4)
    columns_fewer: bool = True
    columns_p_heading: float = 0.5
    columns_p_figure: float = 0.33
    columns_figure_rows: tuple[int, int] = (1, 2)
    columns_p_sidebar: float = 0.25
    columns_sidebar_width: tuple[int, int] = (1, 1)
    columns_sidebar_gap: int = 0
    # Splits rendered beside `validation`, with as many pages, from this config with the given fields replaced,
    # e.g. {"validation_unseen": {"grid_fonts": ["cm_roman"]}}: held-out renderings in the same dataset.
    extra_splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    cjk_font: str | None = None  # a font file with Chinese glyphs; None: search the system font folders
    font_dirs: tuple[str, ...] = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")

    def __post_init__(self):
        for name, allowed in (("page_formats", PAGE_FORMATS), ("layouts", LAYOUTS), ("elements", ELEMENTS),
                              ("languages", ("en", "zh"))):
            mix = getattr(self, name)
            bad = set(mix) - set(allowed)
            if bad:
                raise ValueError(f"SynthConfig.{name}: unknown {sorted(bad)}; choose from {sorted(allowed)}")
            if any(w < 0 for w in mix.values()) or not any(w > 0 for w in mix.values()):
                raise ValueError(f"SynthConfig.{name}: weights must be >= 0 with at least one > 0, got {mix}")
        bad = set(self.fonts or ()) - set(LATIN_FAMILIES)
        if bad:
            raise ValueError(f"SynthConfig.fonts: unknown {sorted(bad)}; choose from {sorted(LATIN_FAMILIES)}")
        if self.vocabulary not in VOCABULARIES:
            raise ValueError(f"SynthConfig.vocabulary must be {' or '.join(map(repr, VOCABULARIES))}, got {self.vocabulary!r}")
        if not 1 <= self.word_length[0] <= self.word_length[1]:
            raise ValueError(f"SynthConfig.word_length must satisfy 1 <= lo <= hi, got {self.word_length}")
        for name in ("grid_rows", "grid_cols", "grid_columns"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"SynthConfig.{name} must satisfy 1 <= lo <= hi, got {(lo, hi)}")
        if self.grid_cell < 8 or self.grid_column_gap < 0 or not self.grid_alphabet.strip():
            raise ValueError("SynthConfig: grid_cell must be >= 8 px, grid_column_gap >= 0 and grid_alphabet "
                             f"non-blank, got {self.grid_cell}, {self.grid_column_gap}, {self.grid_alphabet!r}")
        self._check_glyph_grid()
        self._check_glyph_columns()
        for name, overrides in self.extra_splits.items():
            if name in ("train", "validation") or not name.replace("_", "").isalnum():
                raise ValueError(f"SynthConfig.extra_splits: {name!r} must be a new split name (letters, digits, _)")
            if "extra_splits" in overrides:
                raise ValueError(f"SynthConfig.extra_splits.{name}: an extra split cannot have extra splits")
            self.for_split(name)  # its overrides must make a valid config too
        lo, hi = self.long_side
        if not 128 <= lo <= hi <= MAX_LONG_SIDE:
            raise ValueError(f"SynthConfig.long_side must satisfy 128 <= lo <= hi <= {MAX_LONG_SIDE}, got "
                             f"{self.long_side} (larger pages exceed the readers' pixel limit)")

    def _check_glyph_grid(self) -> None:
        size = self.grid_glyph_size
        ranges = (tuple(size),) if size and not isinstance(size[0], (list, tuple)) else tuple(map(tuple, size))
        if not ranges or any(len(r) != 2 or not 0 < r[0] <= r[1] <= 1.5 for r in ranges):
            raise ValueError("SynthConfig.grid_glyph_size must be [lo, hi] or a list of [lo, hi] with "
                             f"0 < lo <= hi <= 1.5 (fractions of the cell), got {size}")
        self.grid_glyph_size = ranges[0] if len(ranges) == 1 else ranges
        bad = set(self.grid_fonts or ()) - set(GLYPH_FACES)
        if bad or self.grid_fonts == ():
            raise ValueError(f"SynthConfig.grid_fonts: unknown {sorted(bad)} (or empty); choose from "
                             f"{sorted(GLYPH_FACES)}")
        if not 0 <= self.grid_plain <= 1:
            raise ValueError(f"SynthConfig.grid_plain must be a share within [0, 1], got {self.grid_plain}")
        for name in ("grid_shift", "grid_jitter"):
            if not 0 <= getattr(self, name) <= 0.5:
                raise ValueError(f"SynthConfig.{name} must be within [0, 0.5] (fraction of the cell), got "
                                 f"{getattr(self, name)}")
        for name in ("grid_ink", "grid_background"):
            shade = getattr(self, name)
            if shade is not None and not 0 <= shade[0] <= shade[1] <= 255:
                raise ValueError(f"SynthConfig.{name} must satisfy 0 <= lo <= hi <= 255, got {shade}")
        if self.grid_ink and self.grid_background and self.grid_ink[1] >= self.grid_background[0]:
            raise ValueError(f"SynthConfig: grid_ink {self.grid_ink} must be darker than grid_background "
                             f"{self.grid_background} (no overlap), or the glyphs may vanish")

    def _check_glyph_columns(self) -> None:
        for name in ("columns_count", "columns_figure_rows", "columns_sidebar_width"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"SynthConfig.{name} must satisfy 1 <= lo <= hi, got {(lo, hi)}")
        for name in ("columns_p_heading", "columns_p_figure", "columns_p_sidebar"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SynthConfig.{name} must be a share within [0, 1], got {getattr(self, name)}")
        if self.columns_sidebar_gap < 0:
            raise ValueError(f"SynthConfig.columns_sidebar_gap must be >= 0 cells, got {self.columns_sidebar_gap}")
        if self.layouts.get("glyph_columns", 0) > 0:
            from data_pipelines.synth.glyph_columns import check_fits  # it imports the drawing code

            for fmt, weight in self.page_formats.items():
                if weight > 0:
                    try:
                        check_fits(*page_size(fmt, self.long_side[0]), self)
                    except ValueError as e:
                        raise ValueError(f"SynthConfig: the smallest {fmt} page of long_side {self.long_side} "
                                         f"cannot hold every glyph_columns element at once: {e}") from None

    def glyph_size_ranges(self) -> tuple[tuple[float, float], ...]:
        size = self.grid_glyph_size
        return size if isinstance(size[0], tuple) else (size,)

    def for_split(self, split: str) -> "SynthConfig":
        """The config pages of `split` are drawn with: this one, with the split's extra_splits fields replaced.

        Anchor pages (grid_plain) are a training device, so every split but `train` is drawn without them: the
        held-out figures are measured on varied pages only."""
        d = {k: v for k, v in self.to_dict().items() if k != "extra_splits"}
        changes = dict(self.extra_splits.get(split, {}))
        if split != "train":
            changes["grid_plain"] = 0.0
        if not changes or all(d.get(k) == v for k, v in changes.items()) and split not in self.extra_splits:
            return self
        return SynthConfig.from_dict({**d, **changes})

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SynthConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown SynthConfig fields: {sorted(unknown)}")
        if "degrade" in d and isinstance(d["degrade"], dict):
            d["degrade"] = DegradeConfig(**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in d["degrade"].items()})
        for k in ("long_side", "body_size", "margin", "fill", "font_dirs", "word_length", "fonts", "grid_rows",
                  "grid_cols", "grid_columns", "grid_glyph_size", "grid_fonts", "grid_ink", "grid_background",
                  "columns_count", "columns_figure_rows", "columns_sidebar_width"):
            if k in d and isinstance(d[k], list):
                d[k] = tuple(d[k])
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "SynthConfig":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a SynthConfig JSON file ({e})") from e


def parse_mix(text: str) -> dict[str, float]:
    """'en=0.7,zh=0.3' or 'two_column,sidebar' (equal weights) -> {name: weight}."""
    mix = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight) if weight else 1.0
        except ValueError as e:
            raise ValueError(f"bad mix entry {part!r} in {text!r} (expected name or name=weight)") from e
    return mix

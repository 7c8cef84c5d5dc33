"""Knobs of the synthetic page generator. Mixes are {name: weight} (weights need not sum to 1)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_pipelines.synth.fonts import LATIN_FAMILIES

# English word sources of data_pipelines.synth.content.TextSource.
VOCABULARIES = ("faker", "random")
# Page shapes as width / height.
PAGE_FORMATS = {"a4": 1 / 1.414, "letter": 8.5 / 11, "narrow": 0.6, "square": 1.0, "landscape": 1.414,
                "slide": 16 / 9}
LAYOUTS = ("single", "two_column", "three_column", "sidebar", "mixed", "glyph_grid")
ELEMENTS = ("paragraph", "heading", "list", "table", "pull_quote", "figure")


# Pages no reader can open are not worth rendering: at 8192 px the long side of an A4/letter page is ~48 MPx, under
# Pillow's 89.5 MPx decompression-bomb limit that ocr2.processing.image.load_image applies.
MAX_LONG_SIDE = 8192


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
    # apart; glyph height as a fraction of the cell; jitter of each glyph's centre as a fraction of the cell.
    grid_cell: int = 64
    grid_rows: tuple[int, int] = (2, 4)
    grid_cols: tuple[int, int] = (2, 4)
    grid_columns: tuple[int, int] = (1, 1)
    grid_column_gap: int = 1
    grid_glyph_size: tuple[float, float] = (0.69, 0.69)
    grid_jitter: float = 0.0
    grid_alphabet: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
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
        lo, hi = self.long_side
        if not 128 <= lo <= hi <= MAX_LONG_SIDE:
            raise ValueError(f"SynthConfig.long_side must satisfy 128 <= lo <= hi <= {MAX_LONG_SIDE}, got "
                             f"{self.long_side} (larger pages exceed the readers' pixel limit)")

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
                  "grid_cols", "grid_columns", "grid_glyph_size"):
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

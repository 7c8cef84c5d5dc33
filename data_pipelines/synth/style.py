"""The look of one page (fonts, sizes, colours, spacing), drawn from the page's random generator."""

from __future__ import annotations

import random
from dataclasses import dataclass

from data_pipelines.synth.fonts import FontFamily

Color = tuple[int, int, int]

_PAPER = [(255, 255, 255)] * 6 + [(252, 250, 243), (248, 246, 238), (250, 250, 250), (245, 243, 235)]
_TINTS = [(232, 240, 250), (250, 238, 228), (236, 246, 234), (246, 236, 246), (252, 248, 222), (232, 232, 236)]
_INK = [(0, 0, 0)] * 4 + [(20, 20, 20), (40, 40, 40), (25, 30, 60), (50, 30, 20)]
_ACCENTS = [(0, 0, 0), (170, 20, 30), (20, 60, 140), (0, 100, 80), (120, 40, 120), (190, 90, 0), (40, 40, 40)]


def pick(rng: random.Random, mix: dict[str, float]) -> str:
    names = [k for k, w in mix.items() if w > 0]
    return rng.choices(names, weights=[mix[k] for k in names])[0]


@dataclass
class PageStyle:
    body: FontFamily
    display: FontFamily  # titles and headings
    body_size: int
    line_spacing: float
    paragraph_gap: float  # in lines
    indent: bool  # first-line indent instead of paragraph gaps
    justify: bool
    background: Color
    ink: Color
    accent: Color
    tint: Color  # sidebar / table header fill
    heading_scale: float
    title_scale: float
    rules: bool  # horizontal rules under the running header, over the footer

    @property
    def line_height(self) -> int:
        return round(self.body_size * self.line_spacing)

    @property
    def gap(self) -> int:
        return round(self.line_height * self.paragraph_gap)


def sample_style(rng: random.Random, families: dict[str, FontFamily], cjk: FontFamily | None, short_side: int,
                 size_range: tuple[float, float], p_color_background: float, p_justify: float,
                 fonts: tuple[str, ...] | None = None) -> PageStyle:
    # Default: every family but mono (monospaced body text is rare in documents); `fonts` picks them explicitly.
    latin = list(fonts) if fonts else [f for f in families if f != "mono"]
    if cjk is not None:
        body = display = cjk
    else:
        body = families[rng.choice(latin)]
        display = body if rng.random() < 0.5 else families[rng.choice(latin)]
    size = max(8, round(short_side * rng.uniform(*size_range)))
    background = rng.choice(_TINTS) if rng.random() < p_color_background else rng.choice(_PAPER)
    indent = rng.random() < 0.3
    return PageStyle(
        body=body, display=display, body_size=size, line_spacing=rng.uniform(1.2, 1.55),
        paragraph_gap=0.25 if indent else rng.uniform(0.4, 1.0), indent=indent, justify=rng.random() < p_justify,
        background=background, ink=rng.choice(_INK), accent=rng.choice(_ACCENTS), tint=rng.choice(_TINTS),
        heading_scale=rng.uniform(1.15, 1.5), title_scale=rng.uniform(1.7, 2.6), rules=rng.random() < 0.6,
    )
